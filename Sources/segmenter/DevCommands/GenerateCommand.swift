import ArgumentParser
import DevTools
import Foundation
import KafkaIO
import SegmenterCore
import SegmenterService

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce synthetic activity and billing events into Kafka, with progress.",
        discussion: "The stream is deterministic for a given --seed. --out writes every produced message (and whether it is valid) as JSON lines."
    )

    @Option(help: "Kafka bootstrap servers.") var bootstrapServers = "127.0.0.1:9092"
    @Option(help: "Activity topic.") var activityTopic = "activity"
    @Option(help: "Billing topic.") var billingTopic = "billing"
    @Option(help: "Number of users.") var users = 1000
    @Option(help: "Number of events (signups included).") var events = 20_000
    @Option(help: "Days of event time the stream spans.") var days = 30
    @Option(help: "First day (YYYY-MM-DD, UTC); default: --days days before today.") var start: String?
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @Option(help: "User ids are this prefix and a number (use different prefixes to add independent users).")
    var userPrefix = "u"
    @Option(help: "Share of messages sent twice (0...1).") var duplicateRate = 0.0
    @Option(help: "Share of messages replaced by invalid ones (0...1).") var invalidRate = 0.0
    @Option(help: "Messages per second (0: as fast as possible).") var rate = 0.0
    @Option(help: "Write produced messages as JSON lines to this file.") var out: String?
    @Option(help: "Inject an incident: users who sign up on or after this date (YYYY-MM-DD, UTC) have no activity.")
    var incidentAfter: String?

    func validate() throws {
        guard users > 0, events >= users else { throw ValidationError("--events must be at least --users (every user signs up)") }
        guard (0...1).contains(duplicateRate), (0...1).contains(invalidRate) else { throw ValidationError("rates must be in 0...1") }
        if let start, DayCalendar.dayNumber(isoDate: start) == nil { throw ValidationError("--start must be a date like 2026-03-01") }
        if let incidentAfter, DayCalendar.dayNumber(isoDate: incidentAfter) == nil {
            throw ValidationError("--incident-after must be a date like 2026-03-01")
        }
    }

    func run() throws {
        var options = EventGenerator.Options()
        options.users = users
        options.events = events
        options.days = days
        options.seed = seed
        options.userPrefix = userPrefix
        options.duplicateRate = duplicateRate
        options.invalidRate = invalidRate
        if let start, let day = DayCalendar.dayNumber(isoDate: start) {
            options.start = Instant(seconds: Int64(day) * 86_400)
        } else {
            options.start = Instant(seconds: (Int64(Date().timeIntervalSince1970) / 86_400 - Int64(days)) * 86_400)
        }
        if let incidentAfter, let day = DayCalendar.dayNumber(isoDate: incidentAfter) {
            options.incidentSignupsFrom = Instant(seconds: Int64(day) * 86_400)
        }
        let messages = EventGenerator(options: options).messages()
        if let out { try writeLog(messages, to: out) }
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": bootstrapServers]))
        let started = Date()
        try GeneratorRunner.produce(messages, producer: producer, activityTopic: activityTopic, billingTopic: billingTopic,
                                    ratePerSecond: rate > 0 ? rate : nil) { done in
            let elapsed = Date().timeIntervalSince(started)
            FileHandle.standardError.write(Data("\rproduced \(done)/\(messages.count) (\(Int(Double(done) / max(elapsed, 0.001)))/s)".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        say("produced \(messages.count) messages (\(messages.filter { !$0.valid }.count) invalid, \(messages.filter(\.duplicate).count) duplicates) for \(users) users to \(bootstrapServers)")
    }

    private func writeLog(_ messages: [EventGenerator.Message], to path: String) throws {
        var text = ""
        for m in messages {
            text += JSONText.object([("topic", JSONText.quote(m.topic.rawValue)), ("key", JSONText.quote(m.key)),
                                     ("valid", m.valid ? "true" : "false"), ("duplicate", m.duplicate ? "true" : "false"),
                                     ("payload", JSONText.quote(m.payload))]) + "\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
