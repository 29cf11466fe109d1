import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Outputs
import SegmenterCore
import ServiceConfig
import ServiceRuntime

/// A firing alert's drill-down asks the other instances of the group over HTTP; the commit
/// thread must not wait for them (issue 27). A real HTTP server on a real port stands for the
/// other instance; it takes a second to answer, as a busy instance might.
@Suite struct GroupDrillDownsTests {
    static let alert = AlertDefinition(name: "share_rise", segment: "all", kpi: "share", condition: .rise(percent: 50), baseline: .init(count: 3))

    /// What the other instance answers: its members over the partitions it owns.
    static func otherInstancesSums() throws -> Data {
        var accumulator = DrillDownAccumulator(kind: .share)
        for n in 0..<7 { accumulator.add(contribution: n < 3 ? 1 : 0, groups: [("signup_week", "2026-11-30")]) }
        return try JSONEncoder().encode(accumulator)
    }

    @Test func theCommitThreadIsNotHeldWhileTheOtherInstancesAreAsked() async throws {
        let answer = try Self.otherInstancesSums()
        let asked = Counter()
        let router = Router()
        router.get("/api/drilldown") { request, _ -> Response in
            asked.increment()
            #expect(request.uri.queryParameters["scope"] == "owned" && request.uri.queryParameters["kpi"] == "share")
            try await Task.sleep(for: .seconds(1))
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: answer)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let config = try SegmenterConfig.parse(yaml: "segments:\n  - {name: spenders, rule: \"spend(30d) > 5\"}\n", source: "t.yaml", environment: [:])
            let drillDowns = GroupDrillDowns(config: config, clock: SystemClock())
            let others = [PartialsAnnouncement(partition: 1, partials: [:], instance: "other", api: "http://127.0.0.1:\(port)", clock: nil),
                          PartialsAnnouncement(partition: 2, partials: [:], instance: "other", api: "http://127.0.0.1:\(port)", clock: nil),
                          PartialsAnnouncement(partition: 3, partials: [:], instance: "silent", api: nil, clock: nil)]
            // When the step that fires asks: it is told to come back, at once
            let started = ContinuousClock.now
            #expect(throws: GroupDrillDowns.Pending.self) { try drillDowns.take(for: Self.alert, from: others, wait: false) }
            #expect(throws: GroupDrillDowns.Pending.self) { try drillDowns.take(for: Self.alert, from: others, wait: false) }
            #expect(ContinuousClock.now - started < .milliseconds(500), "the commit thread waited \(ContinuousClock.now - started)")
            // Then once the other instance answered, the next ask has its sums (asked once for both asks)
            var gathered: GroupDrillDown.Gathered?
            try await eventually { gathered = try? drillDowns.take(for: Self.alert, from: others, wait: false); return gathered != nil }
            #expect(gathered?.accumulators.map(\.memberCount) == [7])
            #expect(gathered?.missing == [3], "the instance without an API is reported missing")
            #expect(asked.value == 1)
            // And an answer serves one firing: the next one is asked anew; a forced emit waits for it
            // (on a thread of its own, as the commit thread is: blocking a task would starve the server's)
            let waited = try await withCheckedThrowingContinuation { reply in
                Thread.detachNewThread { reply.resume(with: Result { try drillDowns.take(for: Self.alert, from: others, wait: true) }) }
            }
            #expect(waited.accumulators.map(\.memberCount) == [7] && asked.value == 2)
        }
    }

    /// Polls `condition` until it holds, for at most 10 s.
    func eventually(_ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while try !condition() {
            #expect(ContinuousClock.now < deadline, "not within 10 s")
            if ContinuousClock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func increment() { lock.withLock { count += 1 } }
        var value: Int { lock.withLock { count } }
    }
}
