import Foundation
import SegmenterCore
import SegmenterService
import ServiceConfig
import Outputs

/// `inspect` and `export` for the whole consumer group: the instances' announcements (on
/// `<group.id>-kpi-partials`) say who owns which partitions and where its API answers; each
/// owner answers for its partitions. Without a reachable directory or any instance API, the
/// commands read the local state directory and say so.
struct GroupView {
    let config: SegmenterConfig
    let directory: GroupDirectory
    let client: GroupClient

    /// nil (with the reason on stderr) when the group cannot be asked.
    static func open(_ config: SegmenterConfig) -> GroupView? {
        do {
            let directory = try GroupDirectory.read(config: config)
            guard !directory.announcements.isEmpty else {
                note("no instance of group \(config.kafka.groupID) has announced its partitions yet")
                return nil
            }
            return GroupView(config: config, directory: directory, client: GroupClient(config: config))
        } catch {
            note("cannot read the group's directory (\(config.topics.kpiPartials)): \(error)")
            return nil
        }
    }

    static func note(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

    /// Instances that serve an API, with the partitions they own.
    var reachable: [(instance: String, api: String, partitions: [Int32])] {
        directory.instances.compactMap { entry in entry.api.map { (entry.instance, $0, entry.partitions) } }
    }

    /// Partitions no instance with an API answers for.
    var unanswerable: [Int32] {
        let covered = Set(reachable.flatMap(\.partitions))
        return (0..<Int32(directory.partitionCount)).filter { !covered.contains($0) }
    }

    /// Asks every instance in turn for `path` (with `scope=owned`); the first 200 wins.
    func firstAnswer(_ path: String) async -> (instance: String, api: String, body: Data)? {
        for entry in reachable {
            if let body = try? await client.get(entry.api, path) { return (entry.instance, entry.api, body) }
        }
        return nil
    }

    func describeOwners() -> String {
        directory.instances.map { entry in
            "\(entry.instance) owns partitions \(entry.partitions.map(String.init).joined(separator: ","))" + (entry.api.map { " (\($0))" } ?? " (no API)")
        }.joined(separator: "; ")
    }
}
