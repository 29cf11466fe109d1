// The state path alone, for instruction counts (`valgrind --tool=callgrind` cannot run the
// `segmenter` binary here, see README Performance): generated events, decoded up front, committed
// into one partition database in batches. The same file builds against the previous release
// (scripts/bench-binaries defines STATE_V1 there), so both count the same work.
//   commit-bench EVENTS USERS BATCH DIRECTORY [segments]
// With `segments` (this build only), every user signs up first (a region and a plan) and the
// store evaluates the acceptance-like catalog (6 segments, 4 KPIs) at every event and timer;
// after each batch the KPI leader folds and publishes this partition's steps up to its clock,
// as the service's emit does (KPIPublisher.publish, counted apart by scripts/bench).
import Foundation
import SegmenterCore
import SegmenterStore

let arguments = CommandLine.arguments.dropFirst().map { Int($0) }
let events = arguments.first.flatMap { $0 } ?? 100_000
let users = arguments.dropFirst().first.flatMap { $0 } ?? 10_000
let batch = arguments.dropFirst(2).first.flatMap { $0 } ?? 5_000
let directory = URL(fileURLWithPath: CommandLine.arguments.count > 4 ? CommandLine.arguments[4] : NSTemporaryDirectory() + "commit-bench-\(getpid())")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

let withSegments = CommandLine.arguments.count > 5 && CommandLine.arguments[5] == "segments"
var rng = SplitMix64(seed: 7)
let decoder = EventDecoder(currency: "USD")
let start: Int64 = 1_790_000_000
var records: [DecodedRecord] = []
records.reserveCapacity(events)
var signedUp = Set<String>()
for n in 0..<events {
    let user = "u\(rng.next() % UInt64(users))"
    let ts = Instant(seconds: start + Int64(n) * 30 * 86_400 / Int64(events))
    let signup = withSegments && signedUp.insert(user).inserted
    let billing = rng.next() % 4 == 0 && !signup
    let payload = signup
        ? #"{"event_id":"e\#(n)","user_id":"\#(user)","type":"signup","ts":"\#(ts)","attributes":{"region":"\#(["eu", "us", "apac"][Int(rng.next() % 3)])","plan":"\#(["free", "pro", "team"][Int(rng.next() % 3)])"}}"#
        : billing
        ? #"{"event_id":"e\#(n)","user_id":"\#(user)","type":"charge","ts":"\#(ts)","amount":\#(rng.next() % 9000 + 1),"currency":"USD"}"#
        : #"{"event_id":"e\#(n)","user_id":"\#(user)","type":"session","ts":"\#(ts)","duration_s":\#(rng.next() % 3000)}"#
    let bytes = Array(payload.utf8)
    records.append(DecodedRecord(topic: billing ? "billing" : "activity", partition: 0, offset: Int64(n), key: nil, payload: [],
                                 decoded: decoder.decode(bytes, from: billing ? .billing : .activity, wallClock: Instant(seconds: 4_000_000_000))))
}
#if STATE_V1
let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
#else
let catalog = withSegments ? SegmentCatalog(
    segments: try [("big_spenders", "spend(30d) > 500"), ("late_signups", "days_since_signup <= 7"), ("multi_account", "accounts >= 2"),
                   ("inactive_new_users", "hours_since_signup >= 24 and activities_since_signup = 0"),
                   ("eu_pro", "attr.region = 'eu' and attr.plan in ('pro', 'team')"), ("engaged", "active_days(7d) >= 3")]
        .map { try SegmentDefinition(name: $0.0, ruleText: $0.1) },
    kpis: try [("spend_30d", KPIDefinition.Kind.sum, "spend(30d)"), ("avg_daily_minutes", .avg, "avg_daily_minutes(7d)"),
               ("zero_activity_share", .share, "activities_since_signup = 0"), ("avg_accounts", .avg, "accounts")]
        .map { try KPIDefinition(name: $0.0, kind: $0.1, expressionText: $0.2, segments: nil) }) : SegmentCatalog()
let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc, segments: SegmentSetup(catalog: catalog))
let publisher = withSegments ? try KPIPublisher(store: store, topic: "segment-kpi-deltas") : nil
#endif
let began = Date()
var applied = 0
for first in stride(from: 0, to: records.count, by: batch) {
    let slice = Array(records[first..<min(first + batch, records.count)])
    #if STATE_V1
    applied += try store.commit(slice, deadLetterTopic: "dlq", receivedAt: Instant(seconds: 0)).applied
    #else
    applied += try store.commit(slice, receivedAt: Instant(seconds: 0)).applied
    if let publisher, let now = store.watermark.clock {
        let last = KPIGrid.default.lastComplete(at: now)
        let (steps, _) = PartialsFold.steps(after: publisher.foldedBucket, through: last, partitions: [store.partialsTimeline(after: publisher.foldedBucket)])
        try publisher.publish(steps, through: last, current: store.partials.values, now: now, grid: .default, catalog: catalog, causes: [:])
        if let folded = publisher.foldedBucket { store.forgetBuckets(through: folded) }
    }
    #endif
}
let seconds = Date().timeIntervalSince(began)
print("{\"events\":\(events),\"applied\":\(applied),\"seconds\":\(seconds),\"events_per_second\":\(Int(Double(events) / seconds))}")
