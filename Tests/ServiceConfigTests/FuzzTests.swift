import Foundation
import Testing
@testable import SegmenterCore
@testable import ServiceConfig

/// A seeded fuzzer over the three parsers that take outside input (issue 25): the event
/// decoder, the rule parser and the config reader. Inputs are the corpus in `FuzzCorpus/`
/// mutated byte by byte (flips, interesting bytes, inserts, deletes, repeats, splices,
/// truncation) plus, for rules, token soup from the grammar's alphabet. Any crash fails the
/// run; every answer must be a value that keeps its invariants or an error with a reason.
///
/// Bounded: `SEGMENTER_FUZZ_SECONDS` per target (default 3) and `SEGMENTER_FUZZ_SEED` (default
/// fixed, printed) so a finding reproduces. CI runs it with the rest of the suite.
@Suite struct FuzzTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzCorpus")
    static let seconds = Double(ProcessInfo.processInfo.environment["SEGMENTER_FUZZ_SECONDS"] ?? "") ?? 3
    static let seed = UInt64(ProcessInfo.processInfo.environment["SEGMENTER_FUZZ_SEED"] ?? "") ?? 0x5EED_2026

    static func lines(_ name: String) throws -> [[UInt8]] {
        try String(contentsOf: corpus.appendingPathComponent(name), encoding: .utf8).split(separator: "\n").map { Array($0.utf8) }
    }

    /// Runs `body` on mutated inputs until the time budget is spent; returns how many ran.
    static func fuzz(_ name: String, corpus: [[UInt8]], salt: UInt64, _ body: ([UInt8]) throws -> Void) rethrows -> Int {
        var mutator = Mutator(seed: seed ^ salt, corpus: corpus)
        let deadline = Date().addingTimeInterval(seconds)
        var runs = 0
        while runs < 20 || Date() < deadline {
            for input in corpus where runs == 0 { try body(input) }  // the corpus itself first
            try body(mutator.next())
            runs += 1
        }
        print("fuzz \(name): \(runs) inputs (seed \(seed), \(seconds) s)")
        return runs
    }

    @Test func eventDecoderAnswersEveryInputWithAnEventOrAReason() throws {
        let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
        let wall = Instant(seconds: 1_772_400_000)  // 2026-03-01
        var valid = 0
        let runs = try Self.fuzz("events", corpus: try Self.lines("events.jsonl"), salt: 1) { input in
            for kind in [InputKind.activity, .billing] {
                switch decoder.decode(input, from: kind, wallClock: wall) {
                case let .success(event):
                    valid += 1
                    #expect(!event.eventID.isEmpty && !event.userID.isEmpty && event.properties.count <= EventDecoder.maximumProperties)
                    if case let .billing(cents) = event.body { #expect(cents != 0 && abs(cents) <= Money.maximumCents) }
                    if case let .activity(_, micros) = event.body { #expect((0...86_400_000_000).contains(micros)) }
                case let .failure(failure):
                    #expect(!failure.reason.isEmpty)
                }
            }
        }
        #expect(runs > 20 && valid > 0)
    }

    @Test func ruleParserAnswersEveryInputWithATreeThatRoundTripsOrAPosition() throws {
        let features: (Feature) -> FeatureValue = { feature in
            switch feature {
            case .spend, .lifetimeSpend: .money(cents: 12_345)
            case .attribute("plan"): .string("pro")
            case .attribute: .null
            case .signupDate: .date(20_500)
            default: .number(3)
            }
        }
        var parsed = 0
        let rules = try Self.lines("rules.txt"), filters = try Self.lines("filters.txt")
        func check(_ text: String, parse: (String) throws(RuleError) -> RuleExpression) {
            do {
                let expression = try parse(text)
                parsed += 1
                #expect(expression.depth <= RuleLimits.maxDepth)
                let canonical = expression.canonicalText
                let again = try parse(canonical)
                #expect(again.canonicalText == canonical, "\(text) → \(canonical) → \(again.canonicalText)")
                _ = expression.evaluate(features)
                _ = expression.explain(source: text, features).lines()
            } catch {
                #expect(!error.message.isEmpty && error.span.start >= 0 && error.span.start <= text.unicodeScalars.count + 1,
                        "\(text): \(error) at \(error.span)")
            }
        }
        _ = Self.fuzz("rules", corpus: rules, salt: 2) { check(String(decoding: $0, as: UTF8.self), parse: { (t) throws(RuleError) in try RuleParser.parseRule(t) }) }
        _ = Self.fuzz("filters", corpus: filters, salt: 3) { check(String(decoding: $0, as: UTF8.self), parse: { (t) throws(RuleError) in try RuleParser.parseFilter(t) }) }
        // Token soup from the grammar's alphabet: deep, long and malformed expressions.
        var rng = SplitMix64(seed: Self.seed ^ 4)
        let alphabet = ["(", ")", "not", "and", "or", "-", "+", "*", "/", "=", "<=", "!=", "in", "between", "is", "null", "true", "'x'", "3",
                        "1e308", "spend(30d)", "spend(0d)", "attr.plan", "accounts", "date('2026-02-30')", ",", "lifetime", "prop.x", "type"]
        let deadline = Date().addingTimeInterval(Self.seconds)
        var soups = 0
        while soups < 20 || Date() < deadline {
            let count = Int(rng.next() % (rng.next() % 4 == 0 ? 400 : 24)) + 1
            let text = (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined(separator: " ")
            check(text, parse: { (t) throws(RuleError) in try RuleParser.parseRule(t) })
            soups += 1
        }
        #expect(parsed > 0)
    }

    @Test func configReaderAnswersEveryInputWithAConfigOrAnErrorThatNamesTheFile() throws {
        let environment = ["WAREHOUSE_PASSWORD": "x", "SEGMENTER_API_TOKEN": "a-token-of-32-characters-or-so-x"]
        let text = try String(contentsOf: Self.corpus.appendingPathComponent("segmenter.yaml"), encoding: .utf8)
        // Mutated whole, and line by line (a mutation per line keeps most of the file meaningful).
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.utf8) }
        var rng = SplitMix64(seed: Self.seed ^ 5)
        var loaded = 0
        func check(_ yaml: String) {
            do {
                let config = try SegmenterConfig.parse(yaml: yaml, source: "fuzz.yaml", environment: environment)
                loaded += 1
                _ = config.warnings
            } catch let error as ConfigError {
                #expect("\(error)".hasPrefix("fuzz.yaml"), "\(error)")
            } catch {
                Issue.record("not a ConfigError: \(error)")
            }
        }
        _ = Self.fuzz("config", corpus: [Array(text.utf8)], salt: 6) { input in
            var edited = lines
            var mutator = Mutator(seed: rng.next(), corpus: lines)
            for _ in 0..<(1 + rng.next() % 3) {
                let index = Int(rng.next() % UInt64(edited.count))
                edited[index] = rng.next() % 4 == 0 ? input : mutator.next()
            }
            check(String(decoding: Array(edited.joined(separator: [10])), as: UTF8.self))
        }
        #expect(loaded > 0)
    }
}

/// Byte-level mutations of corpus entries, the kinds libFuzzer's default mutator makes.
struct Mutator {
    var rng: SplitMix64
    let corpus: [[UInt8]]
    static let interesting: [UInt8] = Array("{}[]\",:\\0-.eE+ \u{7f}".utf8) + [0, 0xff, 0xc3, 0xe2, 0xf0, 10, 13, 9]

    init(seed: UInt64, corpus: [[UInt8]]) {
        rng = SplitMix64(seed: seed)
        self.corpus = corpus
    }

    mutating func pick(_ count: Int) -> Int { count <= 0 ? 0 : Int(rng.next() % UInt64(count)) }

    mutating func next() -> [UInt8] {
        var bytes = corpus[pick(corpus.count)]
        for _ in 0..<(1 + pick(4)) {
            switch pick(7) {
            case 0 where !bytes.isEmpty: bytes[pick(bytes.count)] ^= UInt8(1 << pick(8))
            case 1 where !bytes.isEmpty: bytes[pick(bytes.count)] = Self.interesting[pick(Self.interesting.count)]
            case 2: bytes.insert(Self.interesting[pick(Self.interesting.count)], at: pick(bytes.count + 1))
            case 3 where !bytes.isEmpty:
                let start = pick(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + 1 + pick(8)))
            case 4 where !bytes.isEmpty:
                let start = pick(bytes.count), length = min(bytes.count - start, 1 + pick(16))
                let piece = bytes[start..<(start + length)]
                bytes.insert(contentsOf: Array(repeatElement(piece, count: 1 + pick(50)).joined()), at: pick(bytes.count + 1))
            case 5:
                let other = corpus[pick(corpus.count)]
                let cut = pick(bytes.count + 1), from = pick(other.count + 1)
                bytes = Array(bytes[..<cut]) + Array(other[from...])
            default: bytes = Array(bytes.prefix(pick(bytes.count + 1)))
            }
        }
        return bytes
    }
}
