/// Small helpers to write JSON text by hand on output paths (outbox, export).
public enum JSONText {
    /// A JSON string literal with the required escapes.
    public static func quote(_ s: String) -> String {
        // Most strings (ids, names, times) need no escaping: copy them whole.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) { return "\"" + s + "\"" }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Appends `s` as a JSON string to UTF-8 bytes (the hot paths build messages as bytes).
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out.append(0x22)
            out.append(contentsOf: s.utf8)
            out.append(0x22)
        } else {
            out.append(contentsOf: quote(s).utf8)
        }
    }

    /// A JSON number; integral values print without a fraction, non-finite values as null.
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Renders `[(key, json)]` pairs as an object, keeping the given order.
    public static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }
}
