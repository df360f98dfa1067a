import PortcullisNet

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
        var scanner = Scanner(bytes: Array(text.utf8), file: file)
        scanner.scan()
        return (scanner.tokens, scanner.trivia, scanner.diagnostics)
    }
}

/// One pass over a file's bytes: where it stands, and what it has produced so far.
private struct Scanner {
    let bytes: [UInt8]
    let file: String
    var tokens: [Token] = []
    var trivia = TokenTrivia()
    var diagnostics: [Diagnostic] = []
    /// Comments and blank lines waiting for the next token.
    private var pending: [Trivia] = []
    private var i = 0
    private var line = 1
    private var column = 1
    private var lineHasToken = false
    private var lineHasComment = false

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
        tokens.reserveCapacity(Lexer.estimatedTokenCount(bytes))
    }

    mutating func scan() {
        while i < bytes.count {
            let c = bytes[i]
            if endsLine(i) {
                endLine()
            } else if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == Lexer.carriageReturn {
                i += 1
                column += 1
            } else if c == UInt8(ascii: "#") {
                comment()
            } else {
                token(c)
            }
        }
        if !pending.isEmpty { trivia.leading[tokens.count] = pending }
        tokens.append(
            Token(
                kind: .end, text: "", range: SourceRange(start: location(), length: 1), startsLine: true))
    }

    private func location() -> SourceLocation { SourceLocation(file: file, line: line, column: column) }

    /// A line ends at `\n`, or at `\r\n` (one character, as `Character` sees it).
    private func endsLine(_ j: Int) -> Bool {
        bytes[j] == Lexer.newline
            || (bytes[j] == Lexer.carriageReturn && j + 1 < bytes.count && bytes[j + 1] == Lexer.newline)
    }

    /// The character starting at byte `j` (a whole grapheme cluster) and its length in bytes.
    private func character(at j: Int) -> (Character, Int) {
        let window = String(decoding: bytes[j..<min(j + 64, bytes.count)], as: UTF8.self)
        let character = window.first ?? "\u{FFFD}"
        return (character, max(1, character.utf8.count))
    }

    private mutating func emit(_ kind: Token.Kind, _ value: String, start: SourceLocation, length: Int) {
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

    private mutating func endLine() {
        if !lineHasToken && !lineHasComment && pending.last != .blankLine { pending.append(.blankLine) }
        i += bytes[i] == Lexer.carriageReturn ? 2 : 1
        line += 1
        column = 1
        lineHasToken = false
        lineHasComment = false
    }

    /// `#` to the end of the line, without trailing blanks: trailing the line's last token, or
    /// leading the next one.
    private mutating func comment() {
        let start = i
        while i < bytes.count && !endsLine(i) { i += 1 }
        var end = i
        while bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        let comment = String(decoding: bytes[start..<end], as: UTF8.self)
        if lineHasToken {
            trivia.trailing[tokens.count - 1] = comment
        } else {
            pending.append(.comment(comment))
        }
        lineHasComment = true
    }

    private mutating func token(_ c: UInt8) {
        let start = location()
        switch c {
        case UInt8(ascii: "{"): punctuation(.openBrace, "{", start: start)
        case UInt8(ascii: "}"): punctuation(.closeBrace, "}", start: start)
        case UInt8(ascii: ","): punctuation(.comma, ",", start: start)
        case Lexer.quote: string(start: start)
        case UInt8(ascii: "-") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: ">"):
            emit(.arrow, "->", start: start, length: 2)
            i += 2
            column += 2
        case _ where Lexer.isWordByte(c): word(start: start)
        default: unexpectedCharacter(c, start: start)
        }
    }

    private mutating func punctuation(_ kind: Token.Kind, _ text: String, start: SourceLocation) {
        emit(kind, text, start: start, length: 1)
        i += 1
        column += 1
    }

    /// A quoted string on one line; `\"` and `\\` escape a quote and a backslash.
    private mutating func string(start: SourceLocation) {
        var value: [UInt8] = []
        var j = i + 1
        var length = 1  // in characters, the opening quote included
        var terminated = false
        var bad = false
        while j < bytes.count && !endsLine(j) {
            if bytes[j] == Lexer.quote {
                terminated = true
                break
            }
            if bytes[j] == UInt8(ascii: "\\") && j + 1 < bytes.count
                && (bytes[j + 1] == Lexer.quote || bytes[j + 1] == UInt8(ascii: "\\"))
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
    }

    /// A maximal run of word bytes, which stops before `->`.
    private mutating func word(start: SourceLocation) {
        var j = i
        while j < bytes.count && Lexer.isWordByte(bytes[j]) {
            if bytes[j] == UInt8(ascii: "-") && j + 1 < bytes.count && bytes[j + 1] == UInt8(ascii: ">") { break }
            j += 1
        }
        emit(.word, String(decoding: bytes[i..<j], as: UTF8.self), start: start, length: j - i)
        column += j - i
        i = j
    }

    private mutating func unexpectedCharacter(_ c: UInt8, start: SourceLocation) {
        let (character, size) = character(at: i)
        let shown = character.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined()
        diagnostics.append(
            Diagnostic(
                "unexpected character \(c >= 0x20 && c < 0x7F ? "'\(character)'" : shown)",
                at: SourceRange(start: start, length: 1),
                hint: "names, addresses and keywords use printable ASCII; put other text in a \"string\""))
        i += size
        column += 1
    }
}
