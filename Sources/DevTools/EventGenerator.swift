import Foundation
import SegmenterCore

/// Deterministic synthetic input: users who sign up, are active, pay, change plans and open
/// accounts, plus optional duplicates and invalid messages. The same seed gives the same stream.
public struct EventGenerator: Sendable {
    public struct Options: Sendable {
        public var users = 1000
        public var events = 20_000
        public var days = 30
        /// First day of the stream; defaults to `days` days before today, so no event is in the future.
        public var start: Instant = Instant(seconds: Int64(Date().timeIntervalSince1970) / 86_400 * 86_400 - 30 * 86_400)
        public var seed: UInt64 = 42
        /// Share of messages re-sent unchanged (same `event_id`).
        public var duplicateRate = 0.0
        /// Share of messages replaced by invalid ones of every kind.
        public var invalidRate = 0.0
        public var userPrefix = "u"
        /// The injected incident: users who sign up at or after this instant have no activity at all.
        public var incidentSignupsFrom: Instant?
        /// When the incident ends: from then on that cohort's activity arrives again (nil: never).
        public var incidentUntil: Instant?
        public init() {}
    }

    /// One message to produce, with what the generator knows about it.
    public struct Message: Sendable {
        public let topic: InputKind
        public let key: String
        public let payload: String
        public let valid: Bool
        public let duplicate: Bool
        public let ts: Instant
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    static let regions = ["eu", "us", "apac"]
    static let plans = ["free", "pro", "team"]
    static let activityTypes = ["session", "page_view", "login", "feature_used"]
    static let features = ["export", "share", "search", "dashboards", "alerts"]
    /// Draft kinds: below 0 the generator's own (sign-up, purchase); 0..<100 drawn.
    static let signupKind = -1, purchaseKind = -2
    /// Drawn kinds that are activity (the incident withholds them): sessions and the like, then
    /// checkouts (56..<62), 70 % of which are followed by a purchase within 20 h.
    static let activityKinds = 0..<62, checkoutKinds = 56..<62

    /// All messages in event-time order.
    public func messages() -> [Message] {
        var rng = SplitMix64(seed: options.seed)
        let spanSeconds = Int64(options.days) * 86_400
        let start = options.start.epochSeconds
        // Sign-ups spread over all but the last day, so late cohorts exist (the incident needs them).
        let signups = (0..<options.users).map { _ in start + Int64(rng.next() % UInt64(max(spanSeconds - 86_400, 1))) }
        var drafts: [(ts: Int64, user: Int, kind: Int, n: Int)] = []
        drafts.reserveCapacity(options.events)
        for user in 0..<options.users where drafts.count < options.events { drafts.append((signups[user], user, Self.signupKind, 0)) }
        var n = 0
        while drafts.count < options.events {
            let user = Int(rng.next() % UInt64(options.users))
            let ts = signups[user] + Int64(rng.next() % UInt64(max(start + spanSeconds - signups[user], 1)))
            let kind = Int(rng.next() % 100)
            drafts.append((ts, user, kind, n))
            n += 1
            // A checkout is paid within 20 h 70 % of the time; the rest are abandoned.
            if Self.checkoutKinds.contains(kind), rng.next() % 10 < 7, drafts.count < options.events {
                drafts.append((ts + 60 + Int64(rng.next() % (20 * 3600)), user, Self.purchaseKind, n))
                n += 1
            }
        }
        drafts.sort { $0.ts != $1.ts ? $0.ts < $1.ts : $0.n < $1.n }

        var out: [Message] = []
        out.reserveCapacity(drafts.count + Int(Double(drafts.count) * options.duplicateRate) + 1)
        for (index, draft) in drafts.enumerated() {
            let userID = "\(options.userPrefix)\(draft.user)"
            let ts = Instant(seconds: draft.ts)
            if options.invalidRate > 0, rng.unit() < options.invalidRate {
                let (topic, payload) = Self.invalid(index: index, userID: userID, ts: ts, rng: &rng)
                out.append(Message(topic: topic, key: userID, payload: payload, valid: false, duplicate: false, ts: ts))
                continue
            }
            if let incident = options.incidentSignupsFrom, signups[draft.user] >= incident.epochSeconds,
               Self.activityKinds.contains(draft.kind) || draft.kind == Self.purchaseKind,
               options.incidentUntil.map({ draft.ts < $0.epochSeconds }) ?? true {
                continue  // the incident: this cohort's activity never arrives
            }
            let (topic, payload) = event(index: index, userID: userID, ts: ts, kind: draft.kind, rng: &rng)
            let message = Message(topic: topic, key: userID, payload: payload, valid: true, duplicate: false, ts: ts)
            out.append(message)
            if options.duplicateRate > 0, rng.unit() < options.duplicateRate {
                out.append(Message(topic: topic, key: userID, payload: payload, valid: true, duplicate: true, ts: ts))
            }
        }
        return out
    }

    private func event(index: Int, userID: String, ts: Instant, kind: Int, rng: inout SplitMix64) -> (InputKind, String) {
        let head = "\"event_id\":\"e\(index)\",\"user_id\":\(JSONText.quote(userID)),\"ts\":\"\(ts)\""
        switch kind {
        case Self.signupKind:
            let region = Self.regions[Int(rng.next() % 3)]
            return (.activity, "{\(head),\"type\":\"signup\",\"attributes\":{\"region\":\"\(region)\",\"plan\":\"free\"}}")
        case Self.purchaseKind:
            let plan = Self.plans[1 + Int(rng.next() % 2)]
            return (.activity, "{\(head),\"type\":\"purchase\",\"properties\":{\"plan\":\"\(plan)\"}}")
        case Self.checkoutKinds:
            let plan = Self.plans[1 + Int(rng.next() % 2)]
            return (.activity, "{\(head),\"type\":\"checkout_started\",\"properties\":{\"plan\":\"\(plan)\"}}")
        case Self.activityKinds:
            let type = Self.activityTypes[Int(rng.next() % UInt64(Self.activityTypes.count))]
            let duration = Double(rng.next() % 3_600_000) / 1000
            let feature = Self.features[Int(rng.next() % UInt64(Self.features.count))]
            let properties = type == "session" || type == "feature_used" ? ",\"properties\":{\"feature\":\"\(feature)\"}" : ""
            return (.activity, "{\(head),\"type\":\"\(type)\",\"duration_s\":\(duration)\(properties)}")
        case 62..<80:
            let plan = Self.plans[1 + Int(rng.next() % 2)]
            return (.billing, "{\(head),\"type\":\"charge\",\"amount\":\(Money.format(cents: Int64(rng.next() % 20_000) + 100)),\"currency\":\"USD\",\"properties\":{\"plan\":\"\(plan)\"}}")
        case 80..<85:
            return (.billing, "{\(head),\"type\":\"charge\",\"amount\":\"\(Money.format(cents: Int64(rng.next() % 9_000) + 1))\",\"currency\":\"EUR\"}")
        case 85..<88:
            return (.billing, "{\(head),\"type\":\"refund\",\"amount\":\(Money.format(cents: Int64(rng.next() % 5_000) + 1)),\"currency\":\"USD\"}")
        case 88..<93:
            let plan = Self.plans[Int(rng.next() % 3)]
            return (.activity, "{\(head),\"type\":\"profile\",\"attributes\":{\"plan\":\"\(plan)\"}}")
        case 93..<97:
            return (.activity, "{\(head),\"type\":\"account_opened\",\"account_id\":\"a\(rng.next() % 4)\"}")
        default:
            return (.activity, "{\(head),\"type\":\"account_closed\",\"account_id\":\"a\(rng.next() % 4)\"}")
        }
    }

    /// One invalid message of a rotating kind (each kind the decoder must catch).
    static func invalid(index: Int, userID: String, ts: Instant, rng: inout SplitMix64) -> (InputKind, String) {
        let user = JSONText.quote(userID)
        switch index % 8 {
        case 0: return (.activity, "{not json")
        case 1: return (.activity, "[1,2,3]")
        case 2: return (.activity, "{\"event_id\":\"bad\(index)\",\"user_id\":\(user),\"type\":\"session\"}")
        case 3: return (.activity, "{\"event_id\":\"bad\(index)\",\"user_id\":\(user),\"type\":\"session\",\"ts\":\"yesterday\"}")
        case 4: return (.billing, "{\"event_id\":\"bad\(index)\",\"user_id\":\(user),\"type\":\"charge\",\"ts\":\"\(ts)\",\"amount\":-5,\"currency\":\"USD\"}")
        case 5: return (.billing, "{\"event_id\":\"bad\(index)\",\"user_id\":\(user),\"type\":\"charge\",\"ts\":\"\(ts)\",\"amount\":5,\"currency\":\"XYZ\"}")
        case 6: return (.billing, "{\"event_id\":\"bad\(index)\",\"user_id\":\(user),\"type\":\"chargeback\",\"ts\":\"\(ts)\",\"amount\":5,\"currency\":\"USD\"}")
        default: return (.activity, "{\"event_id\":\"bad\(index)\",\"user_id\":\(user),\"type\":\"session\",\"ts\":\"\(ts)\",\"duration_s\":90000}")
        }
    }
}
