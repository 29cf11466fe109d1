/// Tokens of the rule language (a subset of SQL expression syntax, SPEC §4).
struct RuleToken: Equatable {
    enum Kind: Equatable {
        case number(Double)
        case window(Int)          // `30d`
        case string(String)
        case identifier(String)   // lower-cased keywords are identifiers too; the parser decides
        case symbol(String)       // ( ) , . = != <> < <= > >= + - * /
        case end
    }
    let kind: Kind
    let span: SourceSpan
}

enum RuleLexer {
    static func tokens(_ text: String) throws(RuleError) -> [RuleToken] {
        let chars = Array(text.unicodeScalars)
        var tokens: [RuleToken] = []
        var i = 0
        func isIdentifierStart(_ c: Unicode.Scalar) -> Bool { c == "_" || (c.isASCII && c.properties.isAlphabetic) }
        func isIdentifierPart(_ c: Unicode.Scalar) -> Bool { isIdentifierStart(c) || ("0"..."9").contains(c) }
        while i < chars.count {
            let c = chars[i]
            let start = i
            if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
            if ("0"..."9").contains(c) || (c == "." && i + 1 < chars.count && ("0"..."9").contains(chars[i + 1])) {
                while i < chars.count, ("0"..."9").contains(chars[i]) || chars[i] == "." { i += 1 }
                if i < chars.count, chars[i] == "e" || chars[i] == "E" {
                    var j = i + 1
                    if j < chars.count, chars[j] == "+" || chars[j] == "-" { j += 1 }
                    if j < chars.count, ("0"..."9").contains(chars[j]) {
                        i = j
                        while i < chars.count, ("0"..."9").contains(chars[i]) { i += 1 }
                    }
                }
                let text = String(String.UnicodeScalarView(chars[start..<i]))
                if i < chars.count, chars[i] == "d", !(i + 1 < chars.count && isIdentifierPart(chars[i + 1])) {
                    guard let days = Int(text), days >= 1, days <= 3650 else {
                        throw RuleError("a window must be a whole number of days in 1...3650, like 30d", at: SourceSpan(start: start, length: i + 1 - start))
                    }
                    i += 1
                    tokens.append(RuleToken(kind: .window(days), span: SourceSpan(start: start, length: i - start)))
                    continue
                }
                guard let value = Double(text), value.isFinite else {
                    throw RuleError("invalid number \(text)", at: SourceSpan(start: start, length: i - start))
                }
                tokens.append(RuleToken(kind: .number(value), span: SourceSpan(start: start, length: i - start)))
                continue
            }
            if isIdentifierStart(c) {
                while i < chars.count, isIdentifierPart(chars[i]) { i += 1 }
                tokens.append(RuleToken(kind: .identifier(String(String.UnicodeScalarView(chars[start..<i]))),
                                        span: SourceSpan(start: start, length: i - start)))
                continue
            }
            if c == "'" {
                var value = String.UnicodeScalarView()
                i += 1
                while true {
                    guard i < chars.count else { throw RuleError("unterminated string", at: SourceSpan(start: start, length: i - start)) }
                    if chars[i] == "'" {
                        if i + 1 < chars.count, chars[i + 1] == "'" { value.append("'"); i += 2; continue }
                        i += 1
                        break
                    }
                    value.append(chars[i])
                    i += 1
                }
                tokens.append(RuleToken(kind: .string(String(value)), span: SourceSpan(start: start, length: i - start)))
                continue
            }
            let two = i + 1 < chars.count ? String(String.UnicodeScalarView([c, chars[i + 1]])) : ""
            if ["!=", "<>", "<=", ">="].contains(two) {
                tokens.append(RuleToken(kind: .symbol(two == "<>" ? "!=" : two), span: SourceSpan(start: start, length: 2)))
                i += 2
                continue
            }
            if "(),.=<>+-*/".unicodeScalars.contains(c) {
                tokens.append(RuleToken(kind: .symbol(String(c)), span: SourceSpan(start: start, length: 1)))
                i += 1
                continue
            }
            throw RuleError("unexpected character '\(c)'", at: SourceSpan(start: start, length: 1))
        }
        tokens.append(RuleToken(kind: .end, span: SourceSpan(start: chars.count, length: 1)))
        return tokens
    }
}
