import Foundation
import Testing
import SegmenterCore
import SegmenterService
import ServiceConfig

/// Memberships and KPIs recomputed from the input, to compare the published topics with.
///
/// Folds the produced messages with SegmenterCore's pure decoder and feature maths (tested on
/// their own in SegmenterCoreTests); what the end-to-end tests check is everything between:
/// Kafka, the outbox, timers, the clock, partials across partitions and instances, restarts.
struct Recomputation {
    let catalog: SegmentCatalog
    /// "user/segment" for every membership the final state holds (`all` excluded: never published).
    let expectedMembers: Set<String>
    let partials: KPIPartials

    /// - Parameter input: every valid message once, in any order. Each user is evaluated at their
    ///   partition pair's final watermark (SPEC §3): with every input read to its end, the
    ///   greatest `ts` of the pair's events. Pairs are found as the producers placed the keys
    ///   (librdkafka's default partitioner, as kcat and `segmenter generate` use).
    init(yaml: String, input: [ProducedLog.Line], partitions: Int = 4) throws {
        catalog = try SegmenterConfig.parse(yaml: yaml, source: "test", environment: [:]).catalog
        let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
        let events = try input.map { line in
            try decoder.decode(Array(line.payload.utf8), from: line.topic == "billing" ? .billing : .activity,
                               wallClock: Instant(seconds: Int64(Date().timeIntervalSince1970))).get()
        }
        let pair = { (user: String) in Partitioner.consistentRandom.partition(of: user, count: partitions) }
        var pairTimes: [Int32: Instant] = [:]
        for event in events { pairTimes[pair(event.userID)] = max(pairTimes[pair(event.userID)] ?? event.ts, event.ts) }
        let truth = FromScratch(events, catalog: catalog, calendar: .utc) { user in pairTimes[pair(user)]! }
        var members: Set<String> = []
        for (user, segments) in truth.members {
            for segment in segments where segment != SegmentCatalog.allSegment { members.insert("\(user)/\(segment)") }
        }
        expectedMembers = members
        partials = truth.partials
    }

    /// Folds `segment-membership` (the last change per user and segment wins) and expects the
    /// recomputed memberships. Returns how many changes each "change by cause" had.
    @discardableResult
    func expectFoldedMembership(_ messages: [[String: Any]]) -> [String: Int] {
        var last: [String: String] = [:]
        var causes: [String: Int] = [:]
        for message in messages {
            last["\(message["user_id"]!)/\(message["segment"]!)"] = message["change"] as? String
            causes["\(message["change"]!) by \(message["cause"]!)", default: 0] += 1
        }
        let folded = Set(last.filter { $0.value == "enter" }.keys)
        let wrong = Array(expectedMembers.symmetricDifference(folded)).sorted().prefix(3)
        // For each wrong membership, the changes published for it, in topic order.
        let history = wrong.map { key in
            key + ": " + messages.filter { "\($0["user_id"]!)/\($0["segment"]!)" == key }
                .map { "\($0["change"]!) by \($0["cause"]!) as of \($0["as_of"]!)" }.joined(separator: "; ")
        }
        let missing = Array(expectedMembers.subtracting(folded)).sorted().prefix(5)
        let extra = Array(folded.subtracting(expectedMembers)).sorted().prefix(5)
        #expect(folded == expectedMembers, "missing \(missing), extra \(extra); published: \(history)")
        return causes
    }

    /// Folds `segment-kpi-deltas`: per pair, seq 1, 2, 3… with previous = the prior current, a
    /// repeated seq only with the same content, and the last current = the recomputed value.
    func expectKPIChains(_ messages: [[String: Any]], expectNoRepeats: Bool = false) {
        for problem in kpiChainProblems(messages, repeatsAreProblems: expectNoRepeats) { Issue.record(Comment(rawValue: problem)) }
    }

    /// What `expectKPIChains` would record, as text: empty when the topic holds the recomputed
    /// chains. Tests poll it (`eventually`) until the outputs reach the input's values.
    func kpiChainProblems(_ messages: [[String: Any]], repeatsAreProblems: Bool = false) -> [String] {
        var problems: [String] = []
        var chains: [String: [Int: [String: Any]]] = [:]
        for message in messages {
            let pair = "\(message["segment"]!)/\(message["kpi"]!)"
            let seq = (message["seq"] as! NSNumber).intValue
            if let seen = chains[pair]?[seq] {
                if !NSDictionary(dictionary: seen).isEqual(to: message) { problems.append("\(pair) seq \(seq) re-sent with other content") }
                if repeatsAreProblems { problems.append("\(pair) seq \(seq) sent twice after a graceful stop") }
            }
            chains[pair, default: [:]][seq] = message
        }
        func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }
        for key in catalog.kpiKeys {
            let pair = "\(key.segment)/\(key.kpi)"
            let expected = catalog.value(of: key, in: partials.values)
            guard let chain = chains[pair] else {
                if expected != nil { problems.append("\(pair) never published but should be \(String(describing: expected))") }
                continue
            }
            if chain.keys.sorted() != Array(1...chain.count) {
                problems.append("\(pair): seq must run 1…n without gaps: \(chain.keys.sorted())")
                continue
            }
            for seq in 2...max(chain.count, 2) where seq <= chain.count && number(chain[seq]!["previous"]) != number(chain[seq - 1]!["current"]) {
                problems.append("\(pair) seq \(seq): previous != prior current")
            }
            let final = number(chain[chain.count]!["current"])
            let matches = switch (expected, final) {
            case (nil, nil): true
            case let (e?, f?): abs(e - f) <= 2e-6 * max(1, abs(e))
            default: false
            }
            if !matches { problems.append("\(pair): published \(String(describing: final)), recomputed \(String(describing: expected))") }
        }
        return problems
    }
}
