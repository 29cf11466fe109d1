/// One piece of a partition database's snapshot, as a message of the internal topic
/// `segmenter-state` (key = partition). A database is cut into pieces below Kafka's default
/// message size; the pieces of one snapshot are produced in order by one producer.
///
/// Message value: a one-line JSON header, a newline, then the piece's raw bytes.
public struct SnapshotChunk: Equatable, Sendable {
    public var partition: Int32
    /// Distinguishes the pieces of one snapshot from those of the next.
    public var snapshotID: String
    public var index: Int
    public var count: Int
    /// Of the whole database file.
    public var totalBytes: Int
    public var crc32: UInt32
    /// The next input offsets stored in the snapshot: where consuming resumes after a restore.
    public var offsets: [String: Int64]
    public var bytes: [UInt8]

    public init(partition: Int32, snapshotID: String, index: Int, count: Int, totalBytes: Int, crc32: UInt32,
                offsets: [String: Int64], bytes: [UInt8]) {
        self.partition = partition
        self.snapshotID = snapshotID
        self.index = index
        self.count = count
        self.totalBytes = totalBytes
        self.crc32 = crc32
        self.offsets = offsets
        self.bytes = bytes
    }

    public static func key(partition: Int32) -> String { "partition-\(partition)" }

    public func encoded() -> [UInt8] {
        let offsetsJSON = JSONText.object(offsets.keys.sorted().map { ($0, String(offsets[$0]!)) })
        let header = JSONText.object([
            ("partition", String(partition)), ("snapshot", JSONText.quote(snapshotID)), ("chunk", String(index)),
            ("chunks", String(count)), ("bytes", String(totalBytes)), ("crc32", String(crc32)), ("offsets", offsetsJSON),
        ])
        return Array(header.utf8) + [0x0A] + bytes
    }

    /// nil for anything that is not a well-formed piece.
    public static func decode(_ message: [UInt8]) -> SnapshotChunk? {
        guard let newline = message.firstIndex(of: 0x0A), let header = try? JSONParser.parse(Array(message[..<newline])),
              case let .number(partition)? = header["partition"], let partitionNumber = Int32(partition),
              case let .string(snapshotID)? = header["snapshot"],
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
        return SnapshotChunk(partition: partitionNumber, snapshotID: snapshotID, index: indexNumber, count: countNumber,
                             totalBytes: totalBytes, crc32: crc32, offsets: offsets, bytes: Array(message[(newline + 1)...]))
    }
}

/// A whole snapshot, put together from its pieces and checked.
public struct StateSnapshot: Sendable {
    public let partition: Int32
    public let offsets: [String: Int64]
    public let bytes: [UInt8]
}

/// Puts snapshots together from pieces read in topic order, keeping the latest complete one of
/// each wanted partition. A snapshot whose pieces stop short (its producer died), arrive out of
/// order, or whose checksum fails is dropped: the previous complete one stays the latest.
public struct SnapshotAssembler {
    private let wanted: Set<Int32>
    private var pending: [Int32: (first: SnapshotChunk, bytes: [UInt8], next: Int)] = [:]
    public private(set) var latest: [Int32: StateSnapshot] = [:]
    /// Snapshots dropped as incomplete or damaged, for the log.
    public private(set) var dropped = 0

    public init(partitions: Set<Int32>) { wanted = partitions }

    public mutating func receive(_ chunk: SnapshotChunk) {
        guard wanted.contains(chunk.partition) else { return }
        if chunk.index == 0 {
            if pending[chunk.partition] != nil { dropped += 1 }
            pending[chunk.partition] = (chunk, chunk.bytes, 1)
        } else if pending[chunk.partition]?.first.snapshotID == chunk.snapshotID, pending[chunk.partition]?.next == chunk.index {
            pending[chunk.partition]!.bytes.append(contentsOf: chunk.bytes)  // in place
            pending[chunk.partition]!.next += 1
        } else {
            if pending.removeValue(forKey: chunk.partition) != nil { dropped += 1 }
            return
        }
        guard let done = pending[chunk.partition], done.next == done.first.count else { return }
        pending[chunk.partition] = nil
        guard done.bytes.count == done.first.totalBytes, Partitioner.crc32(done.bytes) == done.first.crc32 else {
            dropped += 1
            return
        }
        latest[chunk.partition] = StateSnapshot(partition: chunk.partition, offsets: done.first.offsets, bytes: done.bytes)
    }
}
