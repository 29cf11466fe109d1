import Foundation
import KafkaIO

/// Produces generated messages to Kafka, keyed by user, with a progress callback.
public enum GeneratorRunner {
    public static func produce(_ messages: [EventGenerator.Message], producer: KafkaProducer, activityTopic: String,
                               billingTopic: String, ratePerSecond: Double? = nil,
                               progress: (Int) -> Void = { _ in }) throws {
        let started = ContinuousClock.now
        for (index, message) in messages.enumerated() {
            let topic = message.topic == .activity ? activityTopic : billingTopic
            try producer.produceWaiting(topic: topic, key: Array(message.key.utf8), value: Array(message.payload.utf8))
            if index % 10_000 == 9_999 {
                _ = producer.poll()
                progress(index + 1)
            }
            if let rate = ratePerSecond, rate > 0, index % 100 == 99 {
                let due = started + .milliseconds(Int(Double(index + 1) / rate * 1000))
                if due > ContinuousClock.now { Thread.sleep(forTimeInterval: Double((due - ContinuousClock.now).components.attoseconds) / 1e18 + Double((due - ContinuousClock.now).components.seconds)) }
            }
        }
        try producer.flush(timeoutMs: 60_000)
        progress(messages.count)
    }
}
