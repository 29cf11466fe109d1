import ArgumentParser
import Foundation
import KafkaIO
import SegmenterCore
import SegmenterService
import SegmenterStore
import ServiceRuntime

/// `scripts/bench` latency probe: a real-time stream at a fixed rate with probe sign-ups mixed
/// in; the time from producing a probe to reading its `enter` on the membership topic.
struct BenchLatency: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-latency",
        abstract: "Measure event-to-output latency at a fixed rate (needs `run` with a segment `attr.probe = true`).",
        shouldDisplay: false
    )

    @Option var bootstrapServers = "127.0.0.1:9092"
    @Option var rate = 20_000.0
    @Option var seconds = 20.0
    @Option var users = 100_000
    @Option(help: "One probe per this many events.") var probeEvery = 200
    @Option(help: "Seconds at the rate before probes start (new users, cold caches).") var warmup = 10.0
    @Option var membershipTopic = "segment-membership"
    @Option(help: "linger.ms of the background load's producer, batched as a high-volume source would (probes are sent unbatched by their own producer).")
    var loadLingerMs = 50
    @Option(help: "Share of the load on the billing topic (0: billing stays idle, so it stops holding the pair's clock back after a second and no probe waits for it).")
    var billingShare = 0.25
    @Flag(help: "Read the probes back from the input topic itself: the broker's own round trip, for comparison.")
    var direct = false

    func run() throws {
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": bootstrapServers, "linger.ms": "\(loadLingerMs)"]))
        let probeProducer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": bootstrapServers, "linger.ms": "0"]))
        let sent = LockedDictionary()
        let warmupEvents = Int(rate * warmup)
        let total = warmupEvents + Int(rate * seconds)
        let done = StopSignal()
        Thread.detachNewThread { [rate, users, probeEvery, billingShare] in
            var rng = SplitMix64(seed: 99)
            let start = Date()
            for index in 0..<total {
                let wall = Date()
                let ts = Instant(nanoseconds: Int64(wall.timeIntervalSince1970 * 1e9))
                if index >= warmupEvents, index % probeEvery == 0 {
                    let user = "probe-\(index)"
                    let payload = #"{"event_id":"p\#(index)","user_id":"\#(user)","type":"signup","ts":"\#(ts)","attributes":{"probe":true}}"#
                    sent.set(user, wall)
                    try? probeProducer.produceWaiting(topic: "activity", key: Array(user.utf8), value: Array(payload.utf8))
                } else {
                    let user = "u\(rng.next() % UInt64(users))"
                    let billing = Double(rng.next() % 10_000) < billingShare * 10_000
                    let payload = billing
                        ? #"{"event_id":"l\#(index)","user_id":"\#(user)","type":"charge","ts":"\#(ts)","amount":\#(rng.next() % 9000 + 1),"currency":"USD"}"#
                        : #"{"event_id":"l\#(index)","user_id":"\#(user)","type":"session","ts":"\#(ts)","duration_s":\#(rng.next() % 600)}"#
                    // During the warm-up the probes' slots carry load through the probe producer,
                    // so its metadata and producer id are in place when the first probe goes.
                    let carrier = index % probeEvery == 0 ? probeProducer : producer
                    try? carrier.produceWaiting(topic: billing ? "billing" : "activity", key: Array(user.utf8), value: Array(payload.utf8))
                }
                if index % 100 == 99 {
                    _ = producer.poll()
                    _ = probeProducer.poll()
                    let due = start.addingTimeInterval(Double(index + 1) / rate)
                    let wait = due.timeIntervalSinceNow
                    if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                }
            }
            try? producer.flush(timeoutMs: 10_000)
            try? probeProducer.flush(timeoutMs: 10_000)
            done.stop()
        }

        let consumer = try KafkaConsumer(configuration: KafkaConfiguration([
            "bootstrap.servers": bootstrapServers, "group.id": "bench-latency-\(getpid())", "fetch.wait.max.ms": "5"]),
            listener: TopicReader(start: .end))  // only what is produced from now on
        try consumer.subscribe(to: [direct ? "activity" : membershipTopic])
        var latencies: [Double] = []
        let expected = (total - warmupEvents + probeEvery - 1) / probeEvery
        let deadline = Date().addingTimeInterval(warmup + seconds + 30)
        while latencies.count < expected, Date() < deadline {
            for message in try consumer.poll(maxMessages: 10_000, timeoutMs: 20).messages {
                guard let object = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any],
                      let user = object["user_id"] as? String, user.hasPrefix("probe-"),
                      direct || object["change"] as? String == "enter",
                      let sentAt = sent.take(user) else { continue }  // a probe's first output (it enters two segments)
                latencies.append(Date().timeIntervalSince(sentAt) * 1000)
            }
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? -1 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        say("{\"rate\":\(Int(rate)),\"probes\":\(latencies.count),\"expected_probes\":\(expected),\"p50_ms\":\(percentile(0.5)),\"p99_ms\":\(percentile(0.99)),\"max_ms\":\(latencies.last ?? -1)}")
    }
}

final class LockedDictionary: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: Date] = [:]
    func set(_ key: String, _ value: Date) { lock.lock(); values[key] = value; lock.unlock() }
    func take(_ key: String) -> Date? { lock.lock(); defer { lock.unlock() }; return values.removeValue(forKey: key) }
}

/// `scripts/bench` day rollover: move every partition's clock one day past its state (the
/// partitions at once, as `run` does) and time
/// the timer transactions (cause `time`). Run against a stopped service's state directory.
struct BenchRollover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-rollover",
        abstract: "Time one day rollover over the state directory: every due timer fires.",
        shouldDisplay: false
    )
    @OptionGroup var options: ConfigOption
    @Option var hours = 24.0

    func run() throws {
        let config = try options.load()
        let reader = try StateReader(directory: config.stateDirectory)
        guard let now = try reader.clock() else { throw ValidationError("no state") }
        let target = Instant(nanoseconds: now.nanoseconds + Int64(hours * 3.6e12))
        let names = try FileManager.default.contentsOfDirectory(atPath: config.stateDirectory.path)
            .filter { $0.hasPrefix("partition-") && $0.hasSuffix(".sqlite") }
        let stores = try names.map { name in
            try config.openPartition(Int32(name.dropFirst(10).dropLast(7)) ?? 0)
        }
        let users = try reader.counts().users
        let started = Date()
        // The partitions at once, as the service's committer advances them (one thread each,
        // as many at a time as there are cores).
        let outcomes = UnsafeMutableBufferPointer<Result<BatchOutcome, Error>>.allocate(capacity: stores.count)
        defer { outcomes.deallocate() }
        nonisolated(unsafe) let slots = outcomes
        DispatchQueue.concurrentPerform(iterations: stores.count) { index in
            (slots.baseAddress! + index).initialize(to: Result { try stores[index].advanceClock(to: target) })
        }
        defer { outcomes.baseAddress!.deinitialize(count: stores.count) }
        let seconds = Date().timeIntervalSince(started)
        var fired = 0
        var changes = 0
        for outcome in outcomes {
            let outcome = try outcome.get()
            fired += outcome.timersFired
            changes += outcome.membershipChanges
        }
        say("{\"users\":\(users),\"timers_fired\":\(fired),\"membership_changes\":\(changes),\"seconds\":\(seconds),\"timers_per_second\":\(Int(Double(fired) / max(seconds, 1e-9)))}")
    }
}
