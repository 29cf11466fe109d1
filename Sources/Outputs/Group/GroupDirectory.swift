import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KafkaIO
import SegmenterCore
import ServiceConfig

/// Which instance owns each input partition, and where its API answers: the latest
/// announcement of every partition on `<group.id>-kpi-partials` (each owner announces its
/// partitions on every change and every 30 s). How `inspect` and `export` answer for the whole
/// group: each instance answers for the partitions it owns (so for their users), and a
/// segment's KPIs are the announced partials of every partition added up.
public struct GroupDirectory: Sendable {
    public let partitionCount: Int
    /// The latest announcement of each partition: its owner, that owner's API, its KPI partials.
    public let announcements: [Int32: PartialsAnnouncement]

    public init(partitionCount: Int, announcements: [Int32: PartialsAnnouncement]) {
        self.partitionCount = partitionCount
        self.announcements = announcements
    }

    /// Each instance that announced, with the partitions it owns and its API (nil: none).
    public var instances: [(instance: String, api: String?, partitions: [Int32])] {
        Dictionary(grouping: announcements.values, by: \.instance).map { instance, owned in
            (instance, owned.first?.api, owned.map(\.partition).sorted())
        }.sorted { ($0.partitions.first ?? 0) < ($1.partitions.first ?? 0) }
    }

    /// Partitions of the input nobody has announced (no instance owns them yet, or the topic is new).
    public var unannounced: [Int32] { (0..<Int32(partitionCount)).filter { announcements[$0] == nil } }

    /// The group's KPI partials: every partition's latest announcement, added up (what the KPI leader does).
    public var partials: [KPIKey: KPIPartial] {
        var total: [KPIKey: KPIPartial] = [:]
        for announcement in announcements.values {
            for (key, partial) in announcement.partials { total[key, default: KPIPartial()] += partial }
        }
        return total
    }

    /// Reads the announcements topic to its end (a compacted topic: one message per partition).
    public static func read(config: SegmenterConfig) throws -> GroupDirectory {
        let producer = try KafkaProducer(configuration: config.kafka)
        let count = try producer.partitionCount(of: config.topics.activity, timeoutMs: 10_000)
        let group = config.kafka.groupID
        var latest: [Int32: PartialsAnnouncement] = [:]
        let reader = try TopicReader(configuration: config.readerKafka("directory"))
        try reader.readToEnd(config.topics.kpiPartials, timeoutMs: 10_000) { message in
            guard let announcement = PartialsAnnouncement.decode(message.payload), announcement.group == group,
                  announcement.partition < count else { return }
            latest[announcement.partition] = announcement
        }
        return GroupDirectory(partitionCount: count, announcements: latest)
    }
}

/// Asks another instance's API, with the configured token.
public struct GroupClient: Sendable {
    let token: String?

    public init(config: SegmenterConfig) { token = config.httpAccess.token }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private func request(_ api: String, _ path: String, timeout: Double) throws -> URLRequest {
        guard let url = URL(string: api + path) else { throw Failure(description: "bad URL \(api + path)") }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    /// The body of a GET of `path` on `api`; throws with the status and message otherwise.
    public func get(_ api: String, _ path: String, timeout: Double = 30) async throws -> Data {
        let (data, response) = try await URLSession.shared.data(for: try request(api, path, timeout: timeout))
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else {
            throw Failure(description: "\(api)\(path) answered \(status): \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
        return data
    }

    /// The same, blocking, for a thread without an async context (the commit thread); nil on
    /// any failure, after `timeout` at most.
    func getWaiting(_ api: String, _ path: String, timeout: Double) -> Data? {
        guard let request = try? request(api, path, timeout: timeout) else { return nil }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Data?
        URLSession.shared.dataTask(with: request) { data, response, _ in
            if (response as? HTTPURLResponse)?.statusCode == 200 { result = data }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + timeout + 1) == .success else { return nil }
        return result
    }
}
