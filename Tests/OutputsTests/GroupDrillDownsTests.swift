import Foundation
import Testing
@testable import Outputs
import SegmenterCore
import ServiceConfig
import ServiceRuntime

/// A firing alert's drill-down asks the other instances of the group over HTTP; the commit
/// thread must not wait for them (issue 27). A real HTTP server on a real port stands for the
/// other instance; it takes a second to answer, as a busy instance might. The test and the
/// server block threads of their own: the suites running beside it keep the task pool busy.
@Suite struct GroupDrillDownsTests {
    static let alert = AlertDefinition(name: "share_rise", segment: "all", kpi: "share", condition: .rise(percent: 50), baseline: .init(count: 3))

    /// What the other instance answers: its members over the partitions it owns.
    static func otherInstancesSums() throws -> Data {
        var accumulator = DrillDownAccumulator(kind: .share)
        for n in 0..<7 { accumulator.add(contribution: n < 3 ? 1 : 0, groups: [("signup_week", "2026-11-30")]) }
        return try JSONEncoder().encode(accumulator)
    }

    @Test func theCommitThreadIsNotHeldWhileTheOtherInstancesAreAsked() throws {
        let instance = try SlowInstance(answer: Self.otherInstancesSums(), delay: 1)
        defer { instance.stop() }
        let config = try SegmenterConfig.parse(yaml: "segments:\n  - {name: spenders, rule: \"spend(30d) > 5\"}\n", source: "t.yaml", environment: [:])
        let drillDowns = GroupDrillDowns(config: config, clock: SystemClock())
        let api = "http://127.0.0.1:\(instance.port)"
        let others = [PartialsAnnouncement(partition: 1, partials: [:], instance: "other", api: api, clock: nil),
                      PartialsAnnouncement(partition: 2, partials: [:], instance: "other", api: api, clock: nil),
                      PartialsAnnouncement(partition: 3, partials: [:], instance: "silent", api: nil, clock: nil)]
        // When the step that fires asks: it is told to come back, at once, however slow the answer
        let started = ContinuousClock.now
        #expect(throws: GroupDrillDowns.Pending.self) { try drillDowns.take(for: Self.alert, from: others, wait: false) }
        #expect(throws: GroupDrillDowns.Pending.self) { try drillDowns.take(for: Self.alert, from: others, wait: false) }
        #expect(ContinuousClock.now - started < .milliseconds(500), "the commit thread waited \(ContinuousClock.now - started)")
        // Then once the other instance answered, the next ask has its sums (it was asked once for both asks)
        var gathered: GroupDrillDown.Gathered?
        let deadline = ContinuousClock.now + .seconds(30)
        while gathered == nil, ContinuousClock.now < deadline {
            gathered = try? drillDowns.take(for: Self.alert, from: others, wait: false)
            if gathered == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(gathered?.accumulators.map(\.memberCount) == [7])
        #expect(gathered?.missing == [3], "the instance without an API is reported missing")
        #expect(instance.requests == ["/api/drilldown?scope=owned&segment=all&kpi=share"])
        // And an answer serves one firing: the next one is asked anew; a forced emit waits for it
        let waited = try drillDowns.take(for: Self.alert, from: others, wait: true)
        #expect(waited.accumulators.map(\.memberCount) == [7] && instance.requests.count == 2)
    }
}

/// An HTTP server that answers every GET with `answer` after `delay`, one thread per connection.
final class SlowInstance: @unchecked Sendable {
    private(set) var port: UInt16 = 0
    private let listener: Int32
    private let lock = NSLock()
    private var paths: [String] = []
    var requests: [String] { lock.withLock { paths } }

    init(answer: Data, delay: TimeInterval) throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound, listen(listener, 16) == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }  // stopped
                Thread.detachNewThread { [self] in serve(client, answer: answer, delay: delay) }
            }
        }
    }

    private func serve(_ client: Int32, answer: Data, delay: TimeInterval) {
        defer { close(client) }
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !request.suffix(4).elementsEqual("\r\n\r\n".utf8) {
            let count = read(client, &buffer, buffer.count)
            guard count > 0 else { return }
            request += buffer[..<count]
        }
        let line = String(decoding: request, as: UTF8.self).split(separator: "\r\n").first ?? ""
        lock.withLock { paths.append(line.split(separator: " ").dropFirst().first.map(String.init) ?? "") }
        Thread.sleep(forTimeInterval: delay)
        let response = Data("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(answer.count)\r\nConnection: close\r\n\r\n".utf8) + answer
        _ = response.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}
