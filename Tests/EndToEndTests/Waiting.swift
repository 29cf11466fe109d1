import Foundation
import Testing

/// Waiting on what a running service shows (its log, its state, its topics) instead of for a
/// fixed time: a fixed sleep is too short on a loaded machine and too long on an idle one.
extension Processes.Running {
    /// The input partitions (`activity[1]`, …) this instance owns now, from its log: with eager
    /// rebalancing each "assigned …" line names the whole assignment, "revoked …" what it gave up.
    var ownedPartitions: Set<String> {
        var owned: Set<String> = []
        for line in output.split(separator: "\n") {
            for (word, assigns) in [("] assigned ", true), ("] revoked ", false)] {
                guard let range = line.range(of: word) else { continue }
                let names = line[range.upperBound...].prefix { $0 != ";" }.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                if assigns { owned = Set(names) } else { owned.subtract(names) }
            }
        }
        return owned
    }

    /// How many times the log holds `text`.
    func count(_ text: String) -> Int { output.components(separatedBy: text).count - 1 }

    /// Waits until the log holds `text` more than `times` times; false if it did not within `timeout` s.
    @discardableResult
    func waitForLog(_ text: String, moreThan times: Int = 0, timeout: Double = 60) -> Bool {
        waitUntil(timeout: timeout, interval: 0.05) { count(text) > times }
    }
}

extension Harness {
    /// Waits until `instances` split the input partitions of one group between them: each owns
    /// some, none is owned twice, and together they own all of both topics'.
    func waitUntilGroupSplits(_ instances: [Processes.Running], timeout: Double = 60) -> Bool {
        let all = Set((0..<partitions).flatMap { ["activity[\($0)]", "billing[\($0)]"] })
        return waitUntil(timeout: timeout, interval: 0.1) {
            let owned = instances.map(\.ownedPartitions)
            return owned.allSatisfy { !$0.isEmpty } && owned.map(\.count).reduce(0, +) == all.count
                && owned.reduce(into: Set<String>()) { $0.formUnion($1) } == all
        }
    }

    /// Waits until `segment-kpi-deltas` holds the chains `truth` recomputes (the leader's
    /// emits and the relay have caught up); the caller then asserts them.
    func waitUntilKPIChainsMatch(_ truth: Recomputation, timeout: Double = 60) {
        waitUntil(timeout: timeout) { (try? truth.kpiChainProblems(readTopic("segment-kpi-deltas")).isEmpty) == true }
    }

    /// Waits until a snapshot round logged by `instance` holds every partition it owns at the
    /// offsets stored in `config`'s state (what a restore from Kafka would resume at).
    func waitUntilSnapshotsAreCurrent(_ instance: Processes.Running, config: String, timeout: Double = 60) -> Bool {
        waitUntil(timeout: timeout) {
            guard let (status, text) = try? Processes.run(bin, ["inspect", "state", "--no-lag", "--config", config], timeout: 10), status == 0 else { return false }
            // "offset activity[1] next=120" → partition 1 at activity@120
            var stored: [String: [String]] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("offset ") {
                let words = line.dropFirst("offset ".count).split(separator: " ")
                guard words.count == 2, let open = words[0].firstIndex(of: "[") else { continue }
                let topic = words[0][..<open], partition = words[0][words[0].index(after: open)...].dropLast()
                stored[String(partition), default: []].append("\(topic)@\(words[1].dropFirst("next=".count))")
            }
            // "snapshotted 2 partition databases (… KiB) to TOPIC: partition 0 at activity@7 billing@3; partition 1 at …"
            let snapshotted = Set(instance.output.split(separator: "\n").filter { $0.contains("] snapshotted ") }.flatMap { line in
                line.split(separator: ": ").last.map { $0.split(separator: "; ").map(String.init) } ?? []
            })
            // Only what it owns now: a partition that moved away leaves a stale copy behind.
            let owned = Set(instance.ownedPartitions.compactMap { $0.split(separator: "[").last?.dropLast().description })
            stored = stored.filter { owned.contains($0.key) }
            return stored.allSatisfy { partition, offsets in
                snapshotted.contains("partition \(partition) at \(offsets.sorted().joined(separator: " "))")
            }
        }
    }

    /// Waits until the pairs settle and every KPI the state holds (`/api/segments` of the service
    /// at `apiBase`) is the last value published on `segment-kpi-deltas`: the leader's emits and
    /// the relay have caught up with the input. False if not within `timeout` s.
    func waitUntilKPIsPublished(config: String, apiBase: String, timeout: Double = 30) -> Bool {
        waitUntilPairsSettle(config: config)
        return waitUntil(timeout: timeout) {
            guard let segments = try? JSONSerialization.jsonObject(with: Data(Curl.get("\(apiBase)/api/segments").1.utf8)) as? [[String: Any]],
                  let deltas = try? readTopic("segment-kpi-deltas") else { return false }
            var published: [String: Double] = [:]
            for delta in deltas { published["\(delta["segment"]!)/\(delta["kpi"]!)"] = (delta["current"] as? NSNumber)?.doubleValue }
            return !segments.isEmpty && segments.allSatisfy { segment in
                (segment["kpis"] as? [String: Any] ?? [:]).allSatisfy { kpi, value in
                    switch (published["\(segment["segment"]!)/\(kpi)"], (value as? NSNumber)?.doubleValue) {
                    case (nil, nil): true
                    case let (p?, v?): abs(p - v) <= 1e-6 * max(1, abs(v))
                    default: false
                    }
                }
            }
        }
    }
}
