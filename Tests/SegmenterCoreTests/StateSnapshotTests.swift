import Testing
@testable import SegmenterCore

/// Snapshots of partition databases travel through Kafka in pieces; only whole, intact ones
/// may replace a partition's state.
@Suite struct StateSnapshotTests {
    static func pieces(of bytes: [UInt8], partition: Int32 = 3, id: String, size: Int, offsets: [String: Int64] = ["activity": 10]) -> [SnapshotChunk] {
        let count = (bytes.count + size - 1) / size
        return (0..<count).map { index in
            SnapshotChunk(partition: partition, snapshotID: id, index: index, count: count, totalBytes: bytes.count,
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
        // Its producer died after two pieces; the next snapshot starts over.
        for piece in Self.pieces(of: [1, 2, 3] + Self.file, id: "cut", size: 300).prefix(2) { assembler.receive(piece) }
        // A piece flipped in transit.
        var damaged = Self.pieces(of: Self.file + [9], id: "damaged", size: 300)
        damaged[1].bytes[5] ^= 0xFF
        for piece in damaged { assembler.receive(piece) }
        // Pieces out of order.
        let shuffled = Self.pieces(of: Self.file + [8], id: "shuffled", size: 300)
        for piece in [shuffled[0], shuffled[2], shuffled[1], shuffled[3]] { assembler.receive(piece) }
        #expect(assembler.latest[3]?.bytes == Self.file)
        #expect(assembler.dropped == 3)
    }

    @Test func otherPartitionsAreNotKept() {
        var assembler = SnapshotAssembler(partitions: [1])
        for piece in Self.pieces(of: Self.file, partition: 2, id: "x", size: 500) { assembler.receive(piece) }
        #expect(assembler.latest.isEmpty)
    }
}
