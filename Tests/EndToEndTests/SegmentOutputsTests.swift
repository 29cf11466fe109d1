import Foundation
import Testing
import SegmenterCore
import SegmenterService
import ServiceConfig

/// Segments end to end, as separate processes with a SIGKILL mid-stream: the folded
/// `segment-membership` and `segment-kpi-deltas` topics (read with kcat) equal a recomputation
/// from the input, `seq` chains are unbroken and `previous` equals the prior `current`.
///
/// The recomputation folds the produced messages with SegmenterCore's pure decoder and feature
/// maths (tested on their own in SegmenterCoreTests); what is under test here is everything
/// between: Kafka, the outbox, timers, the clock, partials across partitions, restarts.
@Suite(.serialized) struct SegmentOutputsTests {
    static func segmentsYAML(lateCohort: String) -> String {
        """
        metrics:
          - name: logins
            count: type = 'login'
          - name: features_used
            count_distinct: prop.feature
          - name: abandoned_checkouts
            sequence: {first: type = 'checkout_started', then_not: type = 'purchase', within: 12h}
          - name: pro_revenue
            sum: amount
            where: prop.plan = 'pro'
        segments:
          - name: recent_spenders
            rule: spend(3d) > 100
          - name: loggers
            rule: logins(2d) >= 3
          - name: explorers
            rule: features_used(3d) >= 4
          - name: abandoners
            rule: abandoned_checkouts(2d) >= 1
          - name: inactive_new_users
            rule: hours_since_signup >= 24 and activities_since_signup = 0
          - name: late_cohort
            rule: signup_date >= date('\(lateCohort)')
          - name: multi_account
            rule: accounts >= 2
        kpis:
          - name: spend_3d
            sum: spend(3d)
          - name: minutes
            avg: active_minutes(7d)
          - name: zero_share
            share: activities_since_signup = 0
          - name: pro_revenue
            sum: pro_revenue(7d)
        kpi_emit_interval: 200ms
        """
    }

    @Test func foldedOutputsEqualARecomputationAfterASigkill() throws {
        try foldedOutputsEqualARecomputation(stoppingWith: SIGKILL)
    }

    /// A graceful stop mid-stream drains the outbox: no output is lost and none is sent twice.
    @Test func aGracefulStopMidStreamLosesAndRepeatsNoOutput() throws {
        try foldedOutputsEqualARecomputation(stoppingWith: SIGTERM, expectNoRepeats: true)
    }

    func foldedOutputsEqualARecomputation(stoppingWith signal: Int32, expectNoRepeats: Bool = false) throws {
        let harness = try Harness()
        let startDay = DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - 15
        let incident = DayCalendar.isoDate(startDay + 7)
        let produced = try harness.generate(["--users", "300", "--events", "30000", "--days", "10",
                                             "--start", DayCalendar.isoDate(startDay), "--incident-after", incident,
                                             "--invalid-rate", "0.01", "--duplicate-rate", "0.02", "--seed", "11"])
        let yaml = Self.segmentsYAML(lateCohort: incident)
        let config = try harness.writeConfig(batch: 300, extra: yaml)
        // A last event four days after the stream, once everything else is consumed: the clock
        // jumps, and members of spend(3d) > 100 who have no event of their own since must exit by time.
        let lastTs = Instant(seconds: Int64(startDay + 10) * 86_400)
        let tick = #"{"event_id":"tick","user_id":"clock-tick","type":"session","ts":"\#(lastTs.adding(seconds: 4 * 86_400))"}"#
        try harness.runKilledMidStream(config: config, total: produced.total, signal: signal) {
            try harness.produce(topic: "activity", key: "clock-tick", payload: tick)
            return 1
        }

        let input = produced.lines.filter { $0.valid && !$0.duplicate } + [ProducedLog.Line(topic: "activity", valid: true, duplicate: false, payload: tick)]
        let truth = try Recomputation(yaml: yaml, input: input)

        let membership = try harness.readTopic("segment-membership")
        if expectNoRepeats {
            // Changes are published only when membership flips, so per (user, segment) they
            // alternate enter/exit; a re-sent row would show up as the same change twice in a row.
            var previous: [String: String] = [:]
            var repeated: [String] = []
            for message in membership {
                let key = "\(message["user_id"]!)/\(message["segment"]!)"
                let change = message["change"] as! String
                if previous[key] == change { repeated.append("\(key) \(change) at \(message["as_of"]!)") }
                previous[key] = change
            }
            #expect(repeated.isEmpty, "a graceful stop must not re-send membership changes: \(repeated.prefix(6))")
        }
        let causes = truth.expectFoldedMembership(membership)
        #expect((causes["exit by time"] ?? 0) > 0, "days leaving spend(3d) must move users by time alone: \(causes)")
        // and the history, folded at every local midnight, is the one-record-at-a-time history
        // (SPEC §7): the kill re-sends at most what the outbox had not confirmed
        let history = try HistoryCheck(harness: harness, yaml: yaml)
        history.expectSameHistory(exactly: false)
        history.expectSilentSignupsEnterByTime(days: 3)

        truth.expectKPIChains(try harness.readTopic("segment-kpi-deltas"), expectNoRepeats: expectNoRepeats)
    }
}
