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

/// Comments and blank lines the lexer passed over, by the index of the token they stand next
/// to; the parser hangs them on syntax nodes. Kept apart from `Token`: most lines have none.
public struct TokenTrivia: Sendable {
    /// Whole-line comments and blank lines before a token (the end token holds those at the
    /// end of the file).
    public var leading: [Int: [Trivia]] = [:]
    /// The comment ending the line a token is the last one of.
    public var trailing: [Int: String] = [:]
}

/// Splits policy text into tokens; `#` starts a comment that runs to the end of the line.
///
/// It walks the UTF-8 bytes: everything the grammar gives meaning to is ASCII, and a host with
/// tens of thousands of containers is a file of megabytes (walking `Character`s, with their
/// grapheme breaking, took most of the compile time there). Columns still count characters.
public struct Lexer {
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let quote = UInt8(ascii: "\"")

    static func isPunctuation(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: "#"), quote: true
        default: false
        }
    }

    static func isWordByte(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F && !isPunctuation(byte) }

    /// About how many tokens the text holds (words and punctuation; words in comments count
    /// too), so the token array is allocated once: growing it by doubling held two copies at
    /// the compiler's memory peak on large hosts.
    static func estimatedTokenCount(_ bytes: [UInt8]) -> Int {
        var estimate = 1
        var previous = UInt8(ascii: " ")
        for byte in bytes {
            let space = byte <= 0x20
            if !space && (previous <= 0x20 || isPunctuation(byte) || isPunctuation(previous)) { estimate += 1 }
            previous = byte
        }
        return estimate
    }

    public static func tokenize(_ text: String, file: String) -> (
        tokens: [Token], trivia: TokenTrivia, diagnostics: [Diagnostic]
    ) {
        var diagnostics: [Diagnostic] = []
        var trivia = TokenTrivia()
        /// Comments and blank lines waiting for the next token.
        var pending: [Trivia] = []
        var lineHasComment = false
        let bytes = Array(text.utf8)
        let count = bytes.count
        var tokens: [Token] = []
        tokens.reserveCapacity(estimatedTokenCount(bytes))
        var i = 0
        var line = 1
        var column = 1
        var lineHasToken = false

        func location() -> SourceLocation { SourceLocation(file: file, line: line, column: column) }
        func emit(_ kind: Token.Kind, _ value: String, start: SourceLocation, length: Int) {
            if !pending.isEmpty {
                trivia.leading[tokens.count] = pending
                pending = []
            }
            tokens.append(
                Token(
                    kind: kind, text: value, range: SourceRange(start: start, length: length), startsLine: !lineHasToken
                ))
            lineHasToken = true
        }
        /// A line ends at `\n`, or at `\r\n` (one character, as `Character` sees it).
        func endsLine(_ j: Int) -> Bool {
            bytes[j] == newline || (bytes[j] == carriageReturn && j + 1 < count && bytes[j + 1] == newline)
        }
        /// The character starting at byte `j` (a whole grapheme cluster) and its length in bytes.
        func character(at j: Int) -> (Character, Int) {
            let window = String(decoding: bytes[j..<min(j + 64, count)], as: UTF8.self)
            let character = window.first ?? "\u{FFFD}"
            return (character, max(1, character.utf8.count))
        }

        while i < count {
            let c = bytes[i]
            if endsLine(i) {
                if !lineHasToken && !lineHasComment && pending.last != .blankLine { pending.append(.blankLine) }
                i += c == carriageReturn ? 2 : 1
                line += 1
                column = 1
                lineHasToken = false
                lineHasComment = false
                continue
            }
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == carriageReturn {
                i += 1
                column += 1
                continue
            }
            if c == UInt8(ascii: "#") {
                let start = i
                while i < count && !endsLine(i) { i += 1 }
                var end = i
                while bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
                let comment = String(decoding: bytes[start..<end], as: UTF8.self)
                if lineHasToken {
                    trivia.trailing[tokens.count - 1] = comment
                } else {
                    pending.append(.comment(comment))
                }
                lineHasComment = true
                continue
            }
            let start = location()
            switch c {
            case UInt8(ascii: "{"):
                emit(.openBrace, "{", start: start, length: 1)
                i += 1
                column += 1
            case UInt8(ascii: "}"):
                emit(.closeBrace, "}", start: start, length: 1)
                i += 1
                column += 1
            case UInt8(ascii: ","):
                emit(.comma, ",", start: start, length: 1)
                i += 1
                column += 1
            case quote:
                var value: [UInt8] = []
                var j = i + 1
                var length = 1  // in characters, the opening quote included
                var terminated = false
                var bad = false
                while j < count && !endsLine(j) {
                    if bytes[j] == quote {
                        terminated = true
                        break
                    }
                    if bytes[j] == UInt8(ascii: "\\") && j + 1 < count
                        && (bytes[j + 1] == quote || bytes[j + 1] == UInt8(ascii: "\\"))
                    {
                        value.append(bytes[j + 1])
                        j += 2
                        length += 2
                        continue
                    }
                    if bytes[j] < 0x20 && bytes[j] != UInt8(ascii: "\t") { bad = true }
                    let (_, size) = bytes[j] < 0x80 ? (" ", 1) : character(at: j)
                    value += bytes[j..<j + size]
                    j += size
                    length += 1
                }
                if terminated { length += 1 }
                if !terminated {
                    diagnostics.append(
                        Diagnostic(
                            "unterminated string", at: SourceRange(start: start, length: length),
                            hint: "close the string with '\"' on the same line"))
                } else if bad {
                    diagnostics.append(
                        Diagnostic(
                            "control character in string", at: SourceRange(start: start, length: length),
                            hint: "strings hold printable text only"))
                }
                emit(.string, String(decoding: value, as: UTF8.self), start: start, length: length)
                column += length
                i = j + (terminated ? 1 : 0)
            default:
                if c == UInt8(ascii: "-") && i + 1 < count && bytes[i + 1] == UInt8(ascii: ">") {
                    emit(.arrow, "->", start: start, length: 2)
                    i += 2
                    column += 2
                    continue
                }
                guard isWordByte(c) else {
                    let (character, size) = character(at: i)
                    let shown = character.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }
                        .joined()
                    diagnostics.append(
                        Diagnostic(
                            "unexpected character \(c >= 0x20 && c < 0x7F ? "'\(character)'" : shown)",
                            at: SourceRange(start: start, length: 1),
                            hint: "names, addresses and keywords use printable ASCII; put other text in a \"string\""))
                    i += size
                    column += 1
                    continue
                }
                var j = i
                while j < count && isWordByte(bytes[j]) {
                    if bytes[j] == UInt8(ascii: "-") && j + 1 < count && bytes[j + 1] == UInt8(ascii: ">") { break }
                    j += 1
                }
                emit(.word, String(decoding: bytes[i..<j], as: UTF8.self), start: start, length: j - i)
                column += j - i
                i = j
            }
        }
        if !pending.isEmpty { trivia.leading[tokens.count] = pending }
        tokens.append(
            Token(
                kind: .end, text: "", range: SourceRange(start: location(), length: 1), startsLine: true))
        return (tokens, trivia, diagnostics)
    }
}
