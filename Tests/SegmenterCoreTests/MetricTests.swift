import Testing
@testable import SegmenterCore

/// Metrics over any event (SPEC §4b): each kind against a from-scratch recomputation over the
/// event list, including nulls, refunds, property type mismatches, window edges, sequences
/// completed, abandoned and un-abandoned by a late `then`, and a DST day.
@Suite struct MetricTests {
    static func instant(_ text: String) -> Instant { try! RFC3339.parse(text).get() }

    static let catalog = MetricCatalog([
        try! MetricDefinition(name: "logins", source: .count(filter: "type = 'login'")),
        try! MetricDefinition(name: "pro_revenue", source: .sum(value: "amount", filter: "topic = 'billing' and prop.plan = 'pro'")),
        try! MetricDefinition(name: "export_minutes", source: .sum(value: "duration_s / 60", filter: "prop.feature = 'export'")),
        try! MetricDefinition(name: "features_used", source: .countDistinct(value: "prop.feature", filter: "type = 'feature_used'")),
        try! MetricDefinition(name: "paid_checkouts", source: .sequence(first: "type = 'checkout_started'", then: "type = 'purchase'",
                                                                         withinNanos: 24 * Instant.nanosPerHour, abandoned: false)),
        try! MetricDefinition(name: "abandoned_checkouts", source: .sequence(first: "type = 'checkout_started'", then: "type = 'purchase'",
                                                                              withinNanos: 24 * Instant.nanosPerHour, abandoned: true)),
    ])

    static func ref(_ name: String) -> MetricRef { catalog.refs[name]! }

    static func event(_ id: String, _ ts: String, _ type: String, seconds: Double = 0, _ properties: [String: AttributeValue] = [:]) -> UserEvent {
        UserEvent(eventID: id, userID: "u1", ts: instant(ts), body: .activity(type: type, durationMicros: Int64(seconds * 1_000_000)),
                  properties: properties)
    }

    static func billing(_ id: String, _ ts: String, cents: Int64, _ properties: [String: AttributeValue] = [:]) -> UserEvent {
        UserEvent(eventID: id, userID: "u1", ts: instant(ts), body: .billing(cents: cents), properties: properties)
    }

    /// Applies events in the given order, as the batch step does.
    static func applied(_ events: [UserEvent], calendar: DayCalendar = .utc) -> UserMetrics {
        var metrics = UserMetrics()
        for event in events { _ = catalog.apply(event, to: &metrics, calendar: calendar) }
        return metrics
    }

    static func value(_ metrics: UserMetrics, _ name: String, _ window: MetricWindow, now: String, calendar: DayCalendar = .utc) -> FeatureValue {
        let at = instant(now)
        return metrics.value(of: ref(name), over: window, now: at, today: calendar.day(of: at), calendar: calendar)
    }

    @Test func countsMatchingEventsPerWindow() {
        let metrics = Self.applied([
            Self.event("a", "2026-03-01T10:00:00Z", "login"),
            Self.event("b", "2026-03-05T10:00:00Z", "login"),
            Self.event("c", "2026-03-07T10:00:00Z", "login"),
            Self.event("d", "2026-03-07T11:00:00Z", "logout"),
        ])
        #expect(Self.value(metrics, "logins", .days(1), now: "2026-03-07T12:00:00Z") == .number(1))
        #expect(Self.value(metrics, "logins", .days(3), now: "2026-03-07T12:00:00Z") == .number(2))
        #expect(Self.value(metrics, "logins", .days(7), now: "2026-03-07T12:00:00Z") == .number(3))
        #expect(Self.value(metrics, "logins", .lifetime, now: "2026-03-07T12:00:00Z") == .number(3))
        #expect(Self.value(UserMetrics(), "logins", .days(7), now: "2026-03-07T12:00:00Z") == .number(0))
        #expect(metrics.hoursSince(Self.ref("logins"), latest: true, now: Self.instant("2026-03-07T12:00:00Z")) == .number(2))
        #expect(metrics.hoursSince(Self.ref("logins"), latest: false, now: Self.instant("2026-03-07T12:00:00Z")) == .number(146))
        #expect(UserMetrics().hoursSince(Self.ref("logins"), latest: true, now: Self.instant("2026-03-07T12:00:00Z")) == .null)
    }

    @Test func sumsCountRefundsNegativeAndSkipNullsAndMismatchedTypes() {
        let metrics = Self.applied([
            Self.billing("a", "2026-03-01T10:00:00Z", cents: 4_900, ["plan": .string("pro")]),
            Self.billing("b", "2026-03-02T10:00:00Z", cents: -1_000, ["plan": .string("pro")]),   // a refund
            Self.billing("c", "2026-03-02T11:00:00Z", cents: 9_900, ["plan": .string("team")]),
            Self.billing("d", "2026-03-02T12:00:00Z", cents: 9_900, ["plan": .number(1)]),        // a number is not 'pro'
            Self.billing("e", "2026-03-02T13:00:00Z", cents: 9_900),                               // no plan: null, no match
            Self.event("f", "2026-03-02T14:00:00Z", "session", seconds: 90, ["feature": .string("export")]),
            Self.event("g", "2026-03-02T15:00:00Z", "session", seconds: 10, ["feature": .string("export")]),
            Self.event("h", "2026-03-02T16:00:00Z", "session", seconds: 600, ["feature": .bool(true)]),
            // A billing event's duration_s is null: the sum's value is null, so it adds nothing.
            Self.billing("i", "2026-03-02T17:00:00Z", cents: 100, ["feature": .string("export")]),
        ])
        #expect(Self.value(metrics, "pro_revenue", .lifetime, now: "2026-03-02T18:00:00Z") == .number(39))
        #expect(Self.value(metrics, "pro_revenue", .days(1), now: "2026-03-02T18:00:00Z") == .number(-10))
        // 1.5 + 0.166667 (rounded to millionths per event): exact and the same in any order.
        #expect(Self.value(metrics, "export_minutes", .days(1), now: "2026-03-02T18:00:00Z") == .number(1.666667))
        #expect(metrics.hoursSince(Self.ref("export_minutes"), latest: true, now: Self.instant("2026-03-02T18:00:00Z")) == .number(3))
    }

    @Test func countDistinctIsExactAcrossWindowEdgesAndTellsTypesApart() {
        let metrics = Self.applied([
            Self.event("a", "2026-03-01T10:00:00Z", "feature_used", ["feature": .string("export")]),
            Self.event("b", "2026-03-02T10:00:00Z", "feature_used", ["feature": .string("export")]),
            Self.event("c", "2026-03-02T11:00:00Z", "feature_used", ["feature": .string("share")]),
            Self.event("d", "2026-03-03T10:00:00Z", "feature_used", ["feature": .number(1)]),
            Self.event("e", "2026-03-03T11:00:00Z", "feature_used", ["feature": .number(1.0)]),
            Self.event("f", "2026-03-03T12:00:00Z", "feature_used", ["feature": .string("1")]),
            Self.event("g", "2026-03-03T13:00:00Z", "feature_used", ["feature": .bool(true)]),
            Self.event("h", "2026-03-03T14:00:00Z", "feature_used"),                          // no value: adds nothing
            Self.event("i", "2026-03-03T15:00:00Z", "page_view", ["feature": .string("x")]),  // filtered out
        ])
        #expect(Self.value(metrics, "features_used", .days(1), now: "2026-03-03T20:00:00Z") == .number(3))   // 1, '1', true
        #expect(Self.value(metrics, "features_used", .days(2), now: "2026-03-03T20:00:00Z") == .number(5))   // + export, share
        #expect(Self.value(metrics, "features_used", .days(3), now: "2026-03-03T20:00:00Z") == .number(5))   // export twice: once
        #expect(Self.value(metrics, "features_used", .lifetime, now: "2026-03-03T20:00:00Z") == .number(5))
        // The next day, 2026-03-01 leaves the 3-day window but export is still in it (2026-03-02).
        #expect(Self.value(metrics, "features_used", .days(3), now: "2026-03-04T01:00:00Z") == .number(5))
        #expect(Self.value(metrics, "features_used", .days(2), now: "2026-03-04T01:00:00Z") == .number(3))
        #expect(metrics.hoursSince(Self.ref("features_used"), latest: true, now: Self.instant("2026-03-03T20:00:00Z")) == .number(7))
    }

    @Test func sequencesCompleteAbandonAndAreUnAbandonedByALateThen() {
        let started = Self.event("s", "2026-03-01T10:00:00Z", "checkout_started")
        let before = Self.applied([started])
        // Open: neither completed nor abandoned until `within` has passed (strictly after).
        #expect(Self.value(before, "paid_checkouts", .days(1), now: "2026-03-01T12:00:00Z") == .number(0))
        #expect(Self.value(before, "abandoned_checkouts", .days(7), now: "2026-03-02T10:00:00Z") == .number(0))
        #expect(Self.value(before, "abandoned_checkouts", .days(7), now: "2026-03-02T10:00:00.000000001Z") == .number(1))
        // It counts on its first event's day: in a 1-day window only on 2026-03-01.
        #expect(Self.value(before, "abandoned_checkouts", .days(1), now: "2026-03-02T11:00:00Z") == .number(0))
        #expect(Self.value(before, "abandoned_checkouts", .days(2), now: "2026-03-02T11:00:00Z") == .number(1))
        #expect(before.hoursSince(Self.ref("abandoned_checkouts"), latest: true, now: Self.instant("2026-03-02T12:00:00Z")) == .number(26))
        // A purchase 23 h later (arriving after the abandonment counted) un-counts it, in either order.
        let purchase = Self.event("p", "2026-03-02T09:00:00Z", "purchase")
        for order in [[started, purchase], [purchase, started]] {
            let after = Self.applied(order)
            #expect(Self.value(after, "abandoned_checkouts", .lifetime, now: "2026-03-03T00:00:00Z") == .number(0))
            #expect(Self.value(after, "paid_checkouts", .lifetime, now: "2026-03-03T00:00:00Z") == .number(1))
            #expect(Self.value(after, "paid_checkouts", .days(1), now: "2026-03-02T10:00:00Z") == .number(0))   // counted on 03-01
        }
        // A purchase outside (first, first + 24 h] completes nothing; one at the same instant neither.
        for ts in ["2026-03-02T10:00:00.000000001Z", "2026-03-01T10:00:00Z", "2026-03-01T09:00:00Z"] {
            let late = Self.applied([started, Self.event("p", ts, "purchase")])
            #expect(Self.value(late, "paid_checkouts", .lifetime, now: "2026-03-04T00:00:00Z") == .number(0))
            #expect(Self.value(late, "abandoned_checkouts", .lifetime, now: "2026-03-04T00:00:00Z") == .number(1))
        }
        // One purchase completes every open instance whose window holds it.
        let two = Self.applied([started, Self.event("s2", "2026-03-01T20:00:00Z", "checkout_started"), purchase])
        #expect(Self.value(two, "paid_checkouts", .lifetime, now: "2026-03-04T00:00:00Z") == .number(2))
    }

    @Test func windowsAreLocalCalendarDaysAcrossADSTChange() {
        // New York springs forward on 2026-03-08: that local day has 23 hours.
        let zone = DayCalendar(identifier: "America/New_York")!
        let metrics = Self.applied([
            Self.event("a", "2026-03-08T04:30:00Z", "login"),   // 2026-03-07 23:30 EST
            Self.event("b", "2026-03-08T05:30:00Z", "login"),   // 2026-03-08 00:30 EST
            Self.event("c", "2026-03-09T03:30:00Z", "login"),   // 2026-03-08 23:30 EDT
            Self.event("d", "2026-03-09T04:30:00Z", "login"),   // 2026-03-09 00:30 EDT
        ], calendar: zone)
        #expect(Self.value(metrics, "logins", .days(1), now: "2026-03-09T03:59:59Z", calendar: zone) == .number(2))
        #expect(Self.value(metrics, "logins", .days(1), now: "2026-03-09T04:00:00Z", calendar: zone) == .number(1))
        #expect(Self.value(metrics, "logins", .days(2), now: "2026-03-09T05:00:00Z", calendar: zone) == .number(3))
    }

    // MARK: Any order, any settling: the same as a recomputation from the events

    /// SPEC §4b computed directly from the list of events applied, for one metric at `now`.
    static func recomputed(_ metric: MetricDefinition, _ events: [UserEvent], window: MetricWindow, now: Instant,
                           calendar: DayCalendar) -> FeatureValue {
        let today = calendar.day(of: now)
        func inWindow(_ ts: Instant) -> Bool {
            guard case let .days(n) = window else { return true }
            let day = calendar.day(of: ts)
            return day <= today && day > today - DayNumber(n)
        }
        func fields(_ e: UserEvent) -> (Feature) -> FeatureValue { e.field }
        switch metric.kind {
        case let .count(filter):
            return .number(Double(events.filter { inWindow($0.ts) && filter.isTrue(fields($0)) }.count))
        case let .sum(value, filter):
            let total = events.filter { inWindow($0.ts) && (filter?.isTrue(fields($0)) ?? true) }
                .compactMap { value.evaluate(fields($0)).number }.reduce(Int64(0)) { $0 + Int64(($1 * 1e6).rounded(.toNearestOrEven)) }
            return .number(Double(total) / 1e6)
        case let .countDistinct(value, filter):
            let values = events.filter { inWindow($0.ts) && (filter?.isTrue(fields($0)) ?? true) }.compactMap { DistinctValue(value.evaluate(fields($0))) }
            return .number(Double(Set(values).count))
        case let .sequence(first, then, within, abandoned):
            let counted = events.filter { f in
                guard first.isTrue(fields(f)), inWindow(f.ts) else { return false }
                let completed = events.contains { t in then.isTrue(fields(t)) && t.ts > f.ts && t.ts.nanoseconds <= f.ts.nanoseconds + within }
                return abandoned ? !completed && now.nanoseconds > f.ts.nanoseconds + within : completed
            }
            return .number(Double(counted.count))
        }
    }

    @Test(arguments: 0..<40) func anyOrderAndAnySettlingEqualsARecomputation(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let calendar = seed % 2 == 0 ? DayCalendar.utc : DayCalendar(identifier: "Europe/Berlin")!
        let start = Self.instant("2026-03-25T00:00:00Z").nanoseconds   // Berlin moves its clocks on 2026-03-29
        let types = ["login", "checkout_started", "purchase", "feature_used", "session", "page_view"]
        let features: [AttributeValue?] = [.string("export"), .string("share"), .number(1), .bool(true), nil]
        var events: [UserEvent] = []
        for index in 0..<Int(random.next() % 60 + 5) {
            let ts = Instant(nanoseconds: start + Int64(random.next() % (10 * 86_400)) * Instant.nanosPerSecond)
            var properties: [String: AttributeValue] = [:]
            if let feature = features[Int(random.next() % UInt64(features.count))] { properties["feature"] = feature }
            if random.next() % 2 == 0 { properties["plan"] = random.next() % 2 == 0 ? .string("pro") : .string("team") }
            let id = "e\(index)"
            if random.next() % 4 == 0 {
                let cents = Int64(random.next() % 10_000 + 1) * (random.next() % 5 == 0 ? -1 : 1)
                events.append(UserEvent(eventID: id, userID: "u1", ts: ts, body: .billing(cents: cents), properties: properties))
            } else {
                events.append(UserEvent(eventID: id, userID: "u1", ts: ts, body: .activity(type: types[Int(random.next() % UInt64(types.count))],
                                                                                              durationMicros: Int64(random.next() % 3_600_000_000)),
                                        properties: properties))
            }
        }
        // Applied in a shuffled order, settling now and then at an instant no later event precedes.
        var order = events
        for i in order.indices.reversed() { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        var metrics = UserMetrics()
        for (index, event) in order.enumerated() {
            _ = Self.catalog.apply(event, to: &metrics, calendar: calendar)
            if random.next() % 3 == 0, let floor = order[(index + 1)...].map(\.ts).min() {
                _ = Self.catalog.settle(&metrics, floor: floor, userID: "u1", calendar: calendar)
            }
        }
        let latest = events.map(\.ts).max()!
        _ = Self.catalog.settle(&metrics, floor: latest, userID: "u1", calendar: calendar)
        for offsetHours in [0, 5, 24, 30, 24 * 4] {
            let now = Instant(nanoseconds: latest.nanoseconds + Int64(offsetHours) * Instant.nanosPerHour)
            for metric in Self.catalog.metrics {
                for window in [MetricWindow.days(1), .days(3), .days(7), .lifetime] {
                    let got = metrics.value(of: metric.ref, over: window, now: now, today: calendar.day(of: now), calendar: calendar)
                    let want = Self.recomputed(metric, events, window: window, now: now, calendar: calendar)
                    #expect(got == want, "seed \(seed): \(metric.name)(\(window)) at \(now)")
                }
            }
        }
    }

    // MARK: The compiled filters mean what the typed tree means

    @Test func compiledFiltersAgreeWithTheTreeOnEveryShape() throws {
        let filters = [
            "type = 'login'", "'login' = type", "type != 'login'", "type in ('login', 'purchase')", "type not in ('login', 'charge')",
            "topic = 'billing'", "topic = 'other'", "topic != 'activity'", "prop.plan = 'pro'", "prop.plan != 'pro'", "prop.n = 1",
            "prop.flag = true", "prop.flag != false", "not prop.plan = 'pro'", "type = 'charge' and prop.plan = 'pro'",
            "type = 'login' or prop.plan = 'pro'", "not (type = 'login' or prop.flag = true)", "prop.plan = 'pro' and prop.n = 1",
            "amount > 10", "duration_s / 60 >= 2 or prop.plan is null", "prop.n between 0 and 2", "type in ('login', prop.plan)",
        ]
        var random = SplitMix64(seed: 7)
        let values: [AttributeValue?] = [.string("pro"), .string("team"), .number(1), .number(2), .bool(true), .bool(false), nil]
        var events: [UserEvent] = []
        for index in 0..<300 {
            var properties: [String: AttributeValue] = [:]
            for key in ["plan", "n", "flag"] { if let value = values[Int(random.next() % UInt64(values.count))] { properties[key] = value } }
            let ts = Self.instant("2026-03-01T00:00:00Z")
            let body: UserEvent.Body = switch random.next() % 4 {
            case 0: .billing(cents: Int64(random.next() % 3000) - 1000)
            case 1: .signup(attributes: [:])
            default: .activity(type: ["login", "purchase", "session"][Int(random.next() % 3)], durationMicros: Int64(random.next() % 300_000_000))
            }
            events.append(UserEvent(eventID: "e\(index)", userID: "u", ts: ts, body: body, properties: body.countsInDay ? properties : [:]))
        }
        for text in filters {
            let tree = try RuleParser.parseFilter(text)
            let compiled = EventFilter(tree)
            for event in events {
                let want: Bool? = switch tree.evaluate(event.field) {
                case let .bool(b): b
                default: nil
                }
                #expect(compiled.evaluate(event) == want, "\(text) on \(event.type) \(event.properties)")
            }
        }
    }
}
