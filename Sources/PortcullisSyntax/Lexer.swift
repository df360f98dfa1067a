/// A lexical token. Words are maximal runs of printable ASCII that are not punctuation, so
/// addresses (`fd00::/64`), port ranges (`8000-8010`) and publishes (`127.0.0.1:8080`) each
/// arrive as one word that the checker interprets with exact column information.
public struct Token: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case word
        case string
        case openBrace
        case closeBrace
        case comma
        case arrow
        case end
    }

    public let kind: Kind
    /// The word's text, or a string literal's decoded value.
    public let text: String
    public let range: SourceRange
    /// True for the first token on its line; used to resynchronise after a syntax error.
    public let startsLine: Bool

    public var describedForError: String {
        switch kind {
        case .word: "'\(text)'"
        case .string: "string \"\(text)\""
        case .openBrace: "'{'"
        case .closeBrace: "'}'"
        case .comma: "','"
        case .arrow: "'->'"
        case .end: "end of file"
        }
    }
}

/// Splits policy text into tokens; `#` starts a comment that runs to the end of the line.
public struct Lexer {
    public static func tokenize(_ text: String, file: String) -> (tokens: [Token], diagnostics: [Diagnostic]) {
        var tokens: [Token] = []
        var diagnostics: [Diagnostic] = []
        let chars = Array(text)
        var i = 0
        var line = 1
        var column = 1
        var lineHasToken = false

        func location() -> SourceLocation { SourceLocation(file: file, line: line, column: column) }
        func emit(_ kind: Token.Kind, _ value: String, start: SourceLocation, length: Int) {
            tokens.append(
                Token(
                    kind: kind, text: value, range: SourceRange(start: start, length: length), startsLine: !lineHasToken
                ))
            lineHasToken = true
        }
        func isPunctuation(_ c: Character) -> Bool { "{},#\"".contains(c) }
        func isWordCharacter(_ c: Character) -> Bool {
            guard c.isASCII, let v = c.asciiValue else { return false }
            return v > 0x20 && v < 0x7F && !isPunctuation(c)
        }

        while i < chars.count {
            let c = chars[i]
            if c == "\n" || c == "\r\n" {
                i += 1
                line += 1
                column = 1
                lineHasToken = false
                continue
            }
            if c == " " || c == "\t" || c == "\r" {
                i += 1
                column += 1
                continue
            }
            if c == "#" {
                while i < chars.count && chars[i] != "\n" && chars[i] != "\r\n" { i += 1 }
                continue
            }
            let start = location()
            switch c {
            case "{":
                emit(.openBrace, "{", start: start, length: 1)
                i += 1
                column += 1
            case "}":
                emit(.closeBrace, "}", start: start, length: 1)
                i += 1
                column += 1
            case ",":
                emit(.comma, ",", start: start, length: 1)
                i += 1
                column += 1
            case "\"":
                var value = ""
                var j = i + 1
                var terminated = false
                var bad: Character?
                while j < chars.count && chars[j] != "\n" && chars[j] != "\r\n" {
                    if chars[j] == "\"" {
                        terminated = true
                        break
                    }
                    if chars[j] == "\\" && j + 1 < chars.count && (chars[j + 1] == "\"" || chars[j + 1] == "\\") {
                        value.append(chars[j + 1])
                        j += 2
                        continue
                    }
                    if chars[j].isASCII && (chars[j].asciiValue ?? 0) < 0x20 && chars[j] != "\t" { bad = chars[j] }
                    value.append(chars[j])
                    j += 1
                }
                let length = j - i + (terminated ? 1 : 0)
                if !terminated {
                    diagnostics.append(
                        Diagnostic(
                            "unterminated string", at: SourceRange(start: start, length: length),
                            hint: "close the string with '\"' on the same line"))
                } else if bad != nil {
                    diagnostics.append(
                        Diagnostic(
                            "control character in string", at: SourceRange(start: start, length: length),
                            hint: "strings hold printable text only"))
                }
                emit(.string, value, start: start, length: length)
                column += length
                i = j + (terminated ? 1 : 0)
            default:
                if c == "-" && i + 1 < chars.count && chars[i + 1] == ">" {
                    emit(.arrow, "->", start: start, length: 2)
                    i += 2
                    column += 2
                    continue
                }
                guard isWordCharacter(c) else {
                    let shown = c.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined()
                    diagnostics.append(
                        Diagnostic(
                            "unexpected character \(c.isASCII && !(c.asciiValue! < 0x20) ? "'\(c)'" : shown)",
                            at: SourceRange(start: start, length: 1),
                            hint: "names, addresses and keywords use printable ASCII; put other text in a \"string\""))
                    i += 1
                    column += 1
                    continue
                }
                var j = i
                while j < chars.count && isWordCharacter(chars[j]) {
                    if chars[j] == "-" && j + 1 < chars.count && chars[j + 1] == ">" { break }
                    j += 1
                }
                emit(.word, String(chars[i..<j]), start: start, length: j - i)
                column += j - i
                i = j
            }
        }
        tokens.append(
            Token(
                kind: .end, text: "", range: SourceRange(start: location(), length: 1), startsLine: true))
        return (tokens, diagnostics)
    }
}
