import SegmenterCore

/// Little-endian binary fields for the compact blobs of the state (waiting events, metrics):
/// Int64s, UInt32 lengths, UTF-8 strings.
struct BinaryWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func int64(_ value: Int64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func count(_ value: Int) {
        withUnsafeBytes(of: UInt32(value).littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        count(utf8.count)
        bytes.append(contentsOf: utf8)
    }

    mutating func double(_ value: Double) { int64(Int64(bitPattern: value.bitPattern)) }

    mutating func instant(_ value: Instant?) {
        byte(value == nil ? 0 : 1)
        if let value { int64(value.nanoseconds) }
    }
}

/// Reads what `BinaryWriter` wrote; any short or unknown field throws.
struct BinaryReader {
    struct Malformed: Error, CustomStringConvertible {
        let what: String
        var description: String { "\(what) is malformed" }
    }

    let bytes: [UInt8]
    let what: String
    var position = 0

    init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    var atEnd: Bool { position >= bytes.count }

    func malformed() -> Malformed { Malformed(what: what) }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw malformed() }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func int64() throws -> Int64 {
        guard position + 8 <= bytes.count else { throw malformed() }
        var value: UInt64 = 0
        for k in 0..<8 { value |= UInt64(bytes[position + k]) << (8 * k) }
        position += 8
        return Int64(bitPattern: value)
    }

    mutating func count() throws -> Int {
        guard position + 4 <= bytes.count else { throw malformed() }
        var value: UInt32 = 0
        for k in 0..<4 { value |= UInt32(bytes[position + k]) << (8 * k) }
        position += 4
        return Int(value)
    }

    mutating func string() throws -> String {
        let length = try count()
        guard position + length <= bytes.count else { throw malformed() }
        defer { position += length }
        return String(decoding: bytes[position..<position + length], as: UTF8.self)
    }

    mutating func double() throws -> Double { Double(bitPattern: UInt64(bitPattern: try int64())) }

    mutating func instant() throws -> Instant? {
        try byte() == 0 ? nil : Instant(nanoseconds: try int64())
    }
}
