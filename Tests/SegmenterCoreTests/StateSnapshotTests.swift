import Testing
@testable import SegmenterCore

/// Snapshots of partition databases travel through Kafka in pieces; only whole, intact ones
/// may replace a partition's state.
@Suite struct StateSnapshotTests {
    static func pieces(of bytes: [UInt8], partition: Int32 = 3, id: String, slot: Int = 0, size: Int,
                       offsets: [String: Int64] = ["activity": 10]) -> [SnapshotChunk] {
        let count = (bytes.count + size - 1) / size
        return (0..<count).map { index in
            SnapshotChunk(partition: partition, snapshotID: id, slot: slot, index: index, count: count, totalBytes: bytes.count,
                          crc32: Partitioner.crc32(bytes), offsets: offsets,
                          bytes: Array(bytes[(index * size)..<min(bytes.count, (index + 1) * size)]))
        }
    }

    static let file: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) } + [0x0A, 0x0A]

    @Test func aPieceReadsBackWithItsBinaryBytes() throws {
        let piece = Self.pieces(of: Self.file, id: "s1", size: 400, offsets: ["activity": 12, "billing": 3])[2]
        #expect(try #require(SnapshotChunk.decode(piece.encoded())) == piece)
        #expect(SnapshotChunk.decode(Array("no header line".utf8)) == nil)
    }

    @Test func theLatestCompleteSnapshotWins() {
        var assembler = SnapshotAssembler(partitions: [3])
        for piece in Self.pieces(of: Self.file, id: "old", size: 300, offsets: ["activity": 5]) { assembler.receive(piece) }
        let newer = Array(Self.file.reversed())
        for piece in Self.pieces(of: newer, id: "new", size: 300, offsets: ["activity": 9]) { assembler.receive(piece) }
        #expect(assembler.latest[3]?.bytes == newer)
        #expect(assembler.latest[3]?.offsets == ["activity": 9])
    }

    @Test func aSnapshotCutShortOrDamagedLeavesTheEarlierOne() {
        var assembler = SnapshotAssembler(partitions: [3])
        for piece in Self.pieces(of: Self.file, id: "good", size: 300) { assembler.receive(piece) }
        // Its producer died after two pieces.
        for piece in Self.pieces(of: [1, 2, 3] + Self.file, id: "cut", slot: 1, size: 300, offsets: ["activity": 20]).prefix(2) {
            assembler.receive(piece)
        }
        // A piece flipped in transit.
        var damaged = Self.pieces(of: Self.file + [9], id: "damaged", slot: 1, size: 300, offsets: ["activity": 30])
        damaged[1].bytes[5] ^= 0xFF
        for piece in damaged { assembler.receive(piece) }
        // A piece missing.
        let gap = Self.pieces(of: Self.file + [8], id: "gap", slot: 1, size: 300, offsets: ["activity": 40])
        for piece in [gap[0], gap[2], gap[3]] { assembler.receive(piece) }
        #expect(assembler.latest[3]?.bytes == Self.file)
        #expect(assembler.droppedIncludingUnfinished == 3)
        // The same pieces in any order make the snapshot.
        let shuffled = Self.pieces(of: Self.file + [7], id: "shuffled", slot: 1, size: 300, offsets: ["activity": 60])
        for piece in [shuffled[3], shuffled[1], shuffled[0], shuffled[2]] { assembler.receive(piece) }
        #expect(assembler.latest[3]?.bytes == Self.file + [7])
    }

    @Test func otherPartitionsAndOtherGroupsAreNotKept() {
        var assembler = SnapshotAssembler(partitions: [1, 3], group: "growth")
        for piece in Self.pieces(of: Self.file, partition: 2, id: "x", size: 500) { assembler.receive(piece) }
        // Partition 3 of another deployment sharing the topic name.
        for piece in Self.pieces(of: Self.file, partition: 3, id: "y", size: 500) { assembler.receive(piece) }
        #expect(assembler.latest.isEmpty)
        #expect(assembler.foreign == 3)
    }

    /// On a compacted topic each key keeps its latest piece: the pieces of two snapshots in two
    /// slots interleave, and an older snapshot may be read after a newer one.
    @Test func theSnapshotFurthestAlongWinsWhateverTheReadingOrder() {
        var assembler = SnapshotAssembler(partitions: [3])
        let newer = Self.pieces(of: Array(Self.file.reversed()), id: "newer", slot: 1, size: 300, offsets: ["activity": 50, "billing": 7])
        let older = Self.pieces(of: Self.file, id: "older", slot: 0, size: 300, offsets: ["activity": 40, "billing": 7])
        for (a, b) in zip(newer, older) {
            assembler.receive(a)
            assembler.receive(b)
        }
        #expect(assembler.latest[3]?.offsets == ["activity": 50, "billing": 7])
        #expect(assembler.latest[3]?.slot == 1)
        #expect(newer[2].key == "partition-3/slot-1/chunk-2")
    }
}
