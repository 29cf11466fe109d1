/// The grid of event time on which the KPI leader steps: KPI values as of each step go to the
/// charts (`/api/history`) and the day's end, alerts are evaluated, so both are the same whether
/// the input is consumed live or in a catch-up (SPEC §7). `kpi_step` in the config, 1 minute by
/// default.
///
/// Bucket `k` holds the changes that happened in `((k − 1) · step, k · step]`; its value is the
/// KPI as of its end, `k · step`, which includes a change at exactly that instant (a day leaving
/// a window at midnight counts in the bucket that ends at midnight).
public struct KPIGrid: Equatable, Sendable {
    public let seconds: Int64
    private var nanoseconds: Int64 { seconds * Instant.nanosPerSecond }

    public init(seconds: Int64) { self.seconds = max(seconds, 1) }

    public static let `default` = KPIGrid(seconds: 60)

    /// The bucket an instant's change belongs to.
    public func bucket(of instant: Instant) -> Int64 {
        let (q, r) = instant.nanoseconds.quotientAndRemainder(dividingBy: nanoseconds)
        return r > 0 ? q + 1 : q  // the ceiling (Swift's division truncates towards zero)
    }

    /// The last bucket whose end `watermark` has reached: complete, nothing can change it any more.
    public func lastComplete(at watermark: Instant) -> Int64 {
        let (q, r) = watermark.nanoseconds.quotientAndRemainder(dividingBy: nanoseconds)
        return r < 0 ? q - 1 : q  // the floor
    }

    public func end(of bucket: Int64) -> Instant { Instant(nanoseconds: bucket * nanoseconds) }
}
