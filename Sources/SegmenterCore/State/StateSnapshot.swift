/// One piece of a partition database's snapshot, as a message of the internal topic
/// `segmenter-state`. A database is cut into pieces below Kafka's default message size; the
/// pieces of one snapshot are produced in order by one producer.
///
/// Keys are `partition-N/slot-S/chunk-K`, and a partition's snapshots alternate between two
/// slots: on a compacted topic each key keeps its latest piece, so the previous complete
/// snapshot (the other slot) survives while the next one is written, or if it is cut short.
///
/// Message value: a one-line JSON header, a newline, then the piece's raw bytes.
public struct SnapshotChunk: Equatable, Sendable {
    public var partition: Int32
    /// The consumer group whose state it is: a restore ignores another deployment's.
    public var group: String
    /// Distinguishes the pieces of one snapshot from those of the next.
    public var snapshotID: String
    /// 0 or 1.
    public var slot: Int
    public var index: Int
    public var count: Int
    /// Of the whole database file.
    public var totalBytes: Int
    public var crc32: UInt32
    /// The next input offsets stored in the snapshot: where consuming resumes after a restore.
    public var offsets: [String: Int64]
    public var bytes: [UInt8]

    public init(partition: Int32, group: String = "segmenter", snapshotID: String, slot: Int, index: Int, count: Int, totalBytes: Int,
                crc32: UInt32, offsets: [String: Int64], bytes: [UInt8]) {
        self.partition = partition
        self.group = group
        self.snapshotID = snapshotID
        self.slot = slot
        self.index = index
        self.count = count
        self.totalBytes = totalBytes
        self.crc32 = crc32
        self.offsets = offsets
        self.bytes = bytes
    }

    public var key: String { "partition-\(partition)/slot-\(slot)/chunk-\(index)" }

    public func encoded() -> [UInt8] {
        let offsetsJSON = JSONText.object(offsets.keys.sorted().map { ($0, String(offsets[$0]!)) })
        let header = JSONText.object([
            ("partition", String(partition)), ("group", JSONText.quote(group)), ("snapshot", JSONText.quote(snapshotID)), ("slot", String(slot)), ("chunk", String(index)),
            ("chunks", String(count)), ("bytes", String(totalBytes)), ("crc32", String(crc32)), ("offsets", offsetsJSON),
        ])
        return Array(header.utf8) + [0x0A] + bytes
    }

    /// nil for anything that is not a well-formed piece.
    public static func decode(_ message: [UInt8]) -> SnapshotChunk? {
        guard let newline = message.firstIndex(of: 0x0A), let header = try? JSONParser.parse(Array(message[..<newline])),
              case let .number(partition)? = header["partition"], let partitionNumber = Int32(partition),
              case let .string(group)? = header["group"],
              case let .string(snapshotID)? = header["snapshot"],
              case let .number(slot)? = header["slot"], let slotNumber = Int(slot),
              case let .number(index)? = header["chunk"], let indexNumber = Int(index),
              case let .number(count)? = header["chunks"], let countNumber = Int(count), (0..<countNumber).contains(indexNumber),
              case let .number(total)? = header["bytes"], let totalBytes = Int(total),
              case let .number(crc)? = header["crc32"], let crc32 = UInt32(crc),
              case let .object(offsetMembers)? = header["offsets"] else { return nil }
        var offsets: [String: Int64] = [:]
        for (topic, value) in offsetMembers {
            guard case let .number(text) = value, let offset = Int64(text) else { return nil }
            offsets[topic] = offset
        }
        return SnapshotChunk(partition: partitionNumber, group: group, snapshotID: snapshotID, slot: slotNumber, index: indexNumber, count: countNumber,
                             totalBytes: totalBytes, crc32: crc32, offsets: offsets, bytes: Array(message[(newline + 1)...]))
    }
}

/// A whole snapshot, put together from its pieces and checked.
public struct StateSnapshot: Sendable {
    public let partition: Int32
    public let slot: Int
    public let offsets: [String: Int64]
    public let bytes: [UInt8]

    /// Further along in the input than state stored at `other`: no offset behind, one ahead.
    public func isAhead(of other: [String: Int64]) -> Bool {
        offsets.allSatisfy { $0.value >= other[$0.key] ?? 0 } && offsets != other
    }
}

/// Puts snapshots together from their pieces, in whatever order they are read, keeping the
/// complete one furthest along in the input for each wanted partition. A snapshot with pieces
/// missing (its producer died, or compaction replaced some with a later snapshot's) or whose
/// size or checksum is wrong is dropped.
public struct SnapshotAssembler {
    private struct Pending { var first: SnapshotChunk; var pieces: [Int: [UInt8]] = [:] }
    private let wanted: Set<Int32>
    private let group: String
    /// Keyed by snapshot id; pieces are kept by index, so any reading order assembles.
    private var pending: [String: Pending] = [:]
    public private(set) var latest: [Int32: StateSnapshot] = [:]
    /// Snapshots dropped as damaged (size or checksum), for the log.
    public private(set) var dropped = 0

    /// Pieces of other groups' snapshots are ignored (a topic name shared by two deployments).
    public private(set) var foreign = 0

    public init(partitions: Set<Int32>, group: String = "segmenter") {
        wanted = partitions
        self.group = group
    }

    public mutating func receive(_ chunk: SnapshotChunk) {
        guard wanted.contains(chunk.partition) else { return }
        guard chunk.group == group else { foreign += 1; return }
        let id = chunk.snapshotID
        if pending[id] == nil { pending[id] = Pending(first: chunk) }
        guard pending[id]!.first.count == chunk.count else { return }
        pending[id]!.pieces[chunk.index] = chunk.bytes
        guard let done = pending[id], done.pieces.count == done.first.count else { return }
        pending[id] = nil
        var bytes: [UInt8] = []
        bytes.reserveCapacity(done.first.totalBytes)
        for index in 0..<done.first.count { bytes.append(contentsOf: done.pieces[index]!) }
        guard bytes.count == done.first.totalBytes, Partitioner.crc32(bytes) == done.first.crc32 else {
            dropped += 1
            return
        }
        let snapshot = StateSnapshot(partition: chunk.partition, slot: done.first.slot, offsets: done.first.offsets, bytes: bytes)
        if let current = latest[chunk.partition], current.isAhead(of: snapshot.offsets) { return }
        latest[chunk.partition] = snapshot
    }

    /// Snapshots whose pieces never all arrived count as dropped too.
    public var droppedIncludingUnfinished: Int { dropped + pending.count }
}
