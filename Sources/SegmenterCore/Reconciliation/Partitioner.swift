/// Which input partition a `user_id` key lands in, so reconciliation can place a user the
/// stream never delivered in the partition whose state will receive their events.
public enum Partitioner: String, Sendable, CaseIterable {
    /// Kafka's Java default and librdkafka's `murmur2_random` (for keyed messages).
    case murmur2Random = "murmur2_random"
    /// librdkafka's default `consistent_random`: CRC-32 of the key.
    case consistentRandom = "consistent_random"

    public func partition(of key: String, count: Int) -> Int32 {
        precondition(count > 0)
        let bytes = Array(key.utf8)
        switch self {
        case .murmur2Random: return Int32((Self.murmur2(bytes) & 0x7fff_ffff) % UInt32(count))
        case .consistentRandom: return Int32(Self.crc32(bytes) % UInt32(count))
        }
    }

    /// Kafka's murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils.murmur2`.
    static func murmur2(_ data: [UInt8]) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: data.count)
        let blocks = data.count / 4
        for i in 0..<blocks {
            let j = i * 4
            var k = UInt32(data[j]) | UInt32(data[j + 1]) << 8 | UInt32(data[j + 2]) << 16 | UInt32(data[j + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = blocks * 4
        switch data.count % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default: break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return h
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (IEEE, as zlib); pass the previous result as `continuing` to checksum data in pieces.
    /// Not generic: called from other modules, a generic version would not be specialised and
    /// ran ~10x slower on snapshot-sized inputs.
    public static func crc32(_ data: [UInt8], continuing previous: UInt32 = 0) -> UInt32 {
        var crc: UInt32 = previous ^ 0xffff_ffff
        crcTable.withUnsafeBufferPointer { table in
            data.withUnsafeBufferPointer { bytes in
                for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
            }
        }
        return crc ^ 0xffff_ffff
    }
}
