import Testing
@testable import SegmenterCore

/// Every invalid kind of SPEC §2/§8 is rejected with a reason a person understands.
@Suite struct EventDecoderTests {
    let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
    let wall = try! RFC3339.parse("2026-03-10T00:00:00Z").get()

    func decode(_ text: String, _ kind: InputKind = .activity) -> Result<UserEvent, DecodeFailure> {
        decoder.decode(Array(text.utf8), from: kind, wallClock: wall)
    }

    static let head = #""event_id":"e1","user_id":"u1","ts":"2026-03-01T12:00:00Z""#

    @Test(arguments: [
        ("{not json", InputKind.activity, "not valid JSON"),
        ("[1,2]", .activity, "payload is an array, expected a JSON object"),
        ("\"text\"", .activity, "payload is a string"),
        (#"{"user_id":"u1","type":"session","ts":"2026-03-01T12:00:00Z"}"#, .activity, "missing field \"event_id\""),
        (#"{"event_id":"e1","type":"session","ts":"2026-03-01T12:00:00Z"}"#, .activity, "missing field \"user_id\""),
        (#"{"event_id":"e1","user_id":"u1","ts":"2026-03-01T12:00:00Z"}"#, .activity, "missing field \"type\""),
        (#"{"event_id":"e1","user_id":"u1","type":"session"}"#, .activity, "missing field \"ts\""),
        (#"{"event_id":7,"user_id":"u1","type":"session","ts":"2026-03-01T12:00:00Z"}"#, .activity, "field \"event_id\" is a number, expected a string"),
        (#"{"event_id":"","user_id":"u1","type":"session","ts":"2026-03-01T12:00:00Z"}"#, .activity, "field \"event_id\" has 0 characters"),
        (#"{"event_id":"e1","user_id":"u1","type":"session","ts":"2026-03-01 12:00:00"}"#, .activity, "not an RFC 3339 timestamp"),
        (#"{"event_id":"e1","user_id":"u1","type":"session","ts":"2026-02-30T12:00:00Z"}"#, .activity, "day 30 out of range"),
        (#"{"event_id":"e1","user_id":"u1","type":"session","ts":"2026-03-01T12:00:00"}"#, .activity, "missing time zone offset"),
        (#"{"event_id":"e1","user_id":"u1","type":"session","ts":"2026-03-11T00:00:01Z"}"#, .activity, "more than 24 h ahead"),
        (#"{\#(head),"type":"profile"}"#, .activity, "profile event needs field \"attributes\""),
        (#"{\#(head),"type":"profile","attributes":{"a":{"b":1}}}"#, .activity, "attribute \"a\" is an object"),
        (#"{\#(head),"type":"signup","attributes":[1]}"#, .activity, "field \"attributes\" is an array"),
        (#"{\#(head),"type":"account_opened","account_id":""}"#, .activity, "field \"account_id\" has 0 characters"),
        (#"{\#(head),"type":"account_closed"}"#, .activity, "missing field \"account_id\""),
        (#"{\#(head),"type":"session","duration_s":86400.5}"#, .activity, "expected 0...86400"),
        (#"{\#(head),"type":"session","duration_s":-1}"#, .activity, "expected 0...86400"),
        (#"{\#(head),"type":"session","duration_s":"60"}"#, .activity, "field \"duration_s\" is a string"),
        (#"{\#(head),"type":"chargeback","amount":5,"currency":"USD"}"#, .billing, "unknown billing type \"chargeback\""),
        (#"{\#(head),"type":"charge","currency":"USD"}"#, .billing, "needs field \"amount\""),
        (#"{\#(head),"type":"charge","amount":0,"currency":"USD"}"#, .billing, "must be greater than 0"),
        (#"{\#(head),"type":"refund","amount":-3,"currency":"USD"}"#, .billing, "must be greater than 0"),
        (#"{\#(head),"type":"charge","amount":1.234,"currency":"USD"}"#, .billing, "more than 2 decimals"),
        (#"{\#(head),"type":"charge","amount":"12,50","currency":"USD"}"#, .billing, "is not a decimal number"),
        (#"{\#(head),"type":"charge","amount":true,"currency":"USD"}"#, .billing, "field \"amount\" is a boolean"),
        (#"{\#(head),"type":"charge","amount":5,"currency":"usd"}"#, .billing, "not an ISO 4217 code"),
        (#"{\#(head),"type":"charge","amount":5,"currency":"JPY"}"#, .billing, "currency JPY has no exchange rate"),
        (#"{\#(head),"type":"charge","amount":5}"#, .billing, "missing field \"currency\""),
    ])
    func rejectsInvalidInput(payload: String, kind: InputKind, reason: String) throws {
        guard case let .failure(failure) = decode(payload, kind) else {
            Issue.record("accepted invalid payload \(payload)")
            return
        }
        #expect(failure.reason.contains(reason), "reason was: \(failure.reason)")
    }

    @Test func rejectsInvalidUTF8AndOversizedMessages() throws {
        var bytes = Array(#"{"event_id":"e1","user_id":"u"#.utf8)
        bytes += [0xC3, 0x28]
        bytes += Array(#"","type":"session","ts":"2026-03-01T12:00:00Z"}"#.utf8)
        guard case let .failure(utf8) = decoder.decode(bytes, from: .activity, wallClock: wall) else {
            Issue.record("accepted invalid UTF-8"); return
        }
        #expect(utf8.reason.contains("UTF-8"))
        let big = [UInt8](repeating: 0x20, count: (1 << 20) + 1)
        guard case let .failure(size) = decoder.decode(big, from: .activity, wallClock: wall) else {
            Issue.record("accepted a message over 1 MiB"); return
        }
        #expect(size.reason.contains("over the 1 MiB limit"))
    }

    @Test func acceptsValidEventsAndNormalisesThem() throws {
        let refund = try decode(#"{\#(Self.head),"type":"refund","amount":"12.500","currency":"USD"}"#, .billing).get()
        #expect(refund.body == .billing(cents: -1250))
        let exponent = try decode(#"{\#(Self.head),"type":"charge","amount":1.2e1,"currency":"USD"}"#, .billing).get()
        #expect(exponent.body == .billing(cents: 1200))
        // 0.05 EUR × 1.08 = 5.4 cents → 5; 0.25 EUR × 1.08 = 27 cents; 1.25 × 1.08 = 135 cents.
        let small = try decode(#"{\#(Self.head),"type":"charge","amount":0.05,"currency":"EUR"}"#, .billing).get()
        #expect(small.body == .billing(cents: 5))
        let session = try decode(#"{"event_id":"e1","user_id":"u1","type":"session","ts":"2026-03-01t13:00:00.123456789+01:00","duration_s":90.5,"extra":[1]}"#).get()
        #expect(session.ts == (try RFC3339.parse("2026-03-01T12:00:00.123456789Z").get()))
        #expect(session.body == .activity(type: "session", durationMicros: 90_500_000))
        let profile = try decode(#"{\#(Self.head),"type":"profile","attributes":{"plan":"pro","age":3,"vip":false,"gone":null}}"#).get()
        #expect(profile.body == .profile(attributes: ["plan": .string("pro"), "age": .number(3), "vip": .bool(false), "gone": AttributeValue?.none]))
        let signup = try decode(#"{\#(Self.head),"type":"signup"}"#).get()
        #expect(signup.body == .signup(attributes: [:]))
    }

    @Test(arguments: [
        // (cents, rate, expected): half-even on the exact product.
        (Int64(125), "1.1", Int64(138)),    // 137.5 → 138 (even)
        (Int64(135), "1.1", Int64(148)),    // 148.5 → 148 (even)
        (Int64(5), "1.5", Int64(8)),        // 7.5 → 8
        (Int64(3), "1.5", Int64(4)),        // 4.5 → 4
        (Int64(1000), "0.333", Int64(333)),
    ])
    func fxRoundsHalfEven(cents: Int64, rate: String, expected: Int64) {
        #expect(Money.convert(cents: cents, rate: ExchangeRate(rate)!) == expected)
    }

    // MARK: properties (SPEC §2): every invalid shape dead-lettered with a reason

    static let manyProperties = "{" + (0...64).map { "\"p\($0)\":1" }.joined(separator: ",") + "}"
    static let longString = String(repeating: "é", count: 1025)

    @Test(arguments: [
        (#"{\#(head),"type":"login","properties":[1]}"#, InputKind.activity, "field \"properties\" is an array, expected an object"),
        (#"{\#(head),"type":"login","properties":"plan=pro"}"#, .activity, "field \"properties\" is a string, expected an object"),
        (#"{\#(head),"type":"login","properties":{"plan":null}}"#, .activity, "property \"plan\" is null"),
        (#"{\#(head),"type":"login","properties":{"plan":{"tier":1}}}"#, .activity, "property \"plan\" is an object"),
        (#"{\#(head),"type":"login","properties":{"tags":["a"]}}"#, .activity, "property \"tags\" is an array"),
        (#"{\#(head),"type":"login","properties":{"bad-name":1}}"#, .activity, "property name \"bad-name\" must be 1-64 of A-Z"),
        (#"{\#(head),"type":"login","properties":{"":1}}"#, .activity, "property name \"\" must be"),
        (#"{\#(head),"type":"login","properties":{"ümlaut":1}}"#, .activity, "property name \"ümlaut\" must be"),
        (#"{\#(head),"type":"login","properties":{"n":1e999}}"#, .activity, "property \"n\" is not a finite number"),
        (#"{\#(head),"type":"login","properties":{"s":"\#(longString)"}}"#, .activity, "property \"s\" is 1025 characters long, over the 1024 limit"),
        (#"{\#(head),"type":"login","properties":\#(manyProperties)}"#, .activity, "\"properties\" has 65 keys, over the 64 limit"),
        (#"{\#(head),"type":"charge","amount":5,"currency":"USD","properties":{"plan":null}}"#, .billing, "property \"plan\" is null"),
    ])
    func rejectsBadProperties(text: String, kind: InputKind, reason: String) {
        guard case let .failure(failure) = decode(text, kind) else {
            Issue.record("accepted: \(text.prefix(120))")
            return
        }
        #expect(failure.reason.contains(reason), "got: \(failure.reason)")
    }

    @Test func readsPropertiesOfActivityAndBillingEventsOnly() throws {
        let login = try decode(#"{\#(Self.head),"type":"login","properties":{"plan":"pro","seats":3,"trial":false,"x_1":"\#(String(repeating: "a", count: 1024))"}}"#).get()
        #expect(login.properties["plan"] == .string("pro"))
        #expect(login.properties["seats"] == .number(3))
        #expect(login.properties["trial"] == .bool(false))
        #expect(login.properties.count == 4)
        #expect(try decode(#"{\#(Self.head),"type":"login","properties":null}"#).get().properties.isEmpty)
        let charge = try decode(#"{\#(Self.head),"type":"refund","amount":"5.00","currency":"USD","properties":{"plan":"pro"}}"#, .billing).get()
        #expect(charge.properties == ["plan": .string("pro")])
        #expect(charge.type == "refund")
        #expect(charge.value(of: .amount) == .money(cents: -500))
        // On the profile-changing types prop.* is null (SPEC §4b): their properties are ignored.
        let signup = try decode(#"{\#(Self.head),"type":"signup","properties":{"plan":"pro"}}"#).get()
        #expect(signup.properties.isEmpty)
        #expect(signup.value(of: .property("plan")) == .null)
    }
}
