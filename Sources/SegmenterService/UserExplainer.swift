import Foundation
import SegmenterCore
import SegmenterStore

/// One user's explanation from the live state: `explain` and `/api/users/{id}/explain`.
public enum UserExplainer {
    /// nil when the state has no such user (or no events yet).
    public static func explain(_ userID: String, segment: String? = nil, config: SegmenterConfig, reader: StateReader) throws -> UserExplanation? {
        guard let earliest = try reader.clock() else { return nil }
        let calendar = config.calendar
        guard let user = try reader.user(userID, daysFrom: config.catalog.firstWindowDay(at: earliest, calendar: calendar)) else { return nil }
        // A user lives on their partition pair's time (SPEC §3).
        let now = try reader.pairClocks()[user.partition] ?? earliest
        return config.catalog.explain(userID: userID, profile: user.profile, days: user.days, now: now, calendar: calendar, segment: segment)
    }
}
