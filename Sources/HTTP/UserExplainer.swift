import Foundation
import SegmenterCore
import SegmenterStore
import ServiceConfig

/// One user's explanation from the live state: `explain` and `/api/users/{id}/explain`.
public enum UserExplainer {
    /// nil when the state has no such user (or no events yet).
    public static func explain(_ userID: String, segment: String? = nil, config: SegmenterConfig, reader: StateReader) throws -> UserExplanation? {
        let calendar = config.calendar
        guard let (user, now) = try reader.userAtPairClock(userID, firstDay: { config.catalog.firstWindowDay(at: $0, calendar: calendar) }) else { return nil }
        var explanation = config.catalog.explain(userID: userID, profile: user.profile, days: user.days, now: now, calendar: calendar, segment: segment)
        let timeline = try reader.timeline(of: userID, partition: user.partition)
        explanation.history = timeline.history.filter { segment == nil || $0.segment == segment }
        explanation.waiting = timeline.waiting
        return explanation
    }
}
