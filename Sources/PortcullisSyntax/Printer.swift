import PortcullisNet

/// Writes a syntax tree as policy text in its canonical form (docs/language.md, "Formatting"):
/// four spaces of indentation, one setting per line, one space between words and `, ` in
/// lists, comments where they were, at most one blank line in a row and always one around a
/// block. Printing what it printed changes nothing, and what it prints compiles to what the
/// tree compiles to: only trivia and spacing are the printer's to choose.
public struct Printer {
    /// The canonical text of `file`.
    public static func print(_ file: SyntaxFile) -> String { printPlaced(file).text }

    /// The canonical text, and the tree with every word placed where the text has it: a tree
    /// built in memory (by `import`) gets the places that diagnostics about it can quote.
    public static func printPlaced(_ file: SyntaxFile) -> (text: String, placed: SyntaxFile) {
        var printer = Printer(file: file.path)
        let placed = printer.print(file)
        return (printer.text, placed)
    }

    static let indentation = "    "
    /// Between the code of a line and the comment that ends it.
    static let commentGap = "  "

    private let file: String
    private var text = ""
    private var line = 1
    private var column = 1

    private init(file: String) { self.file = file }

    // MARK: Layout

    /// Trivia as printed: runs of blank lines become one; `blankFirst` true puts a blank line
    /// first, false removes those there, nil keeps what was written; `trimEnd` removes blank
    /// lines at the end.
    static func tidy(_ pieces: [Trivia], blankFirst: Bool?, trimEnd: Bool = false) -> [Trivia] {
        var tidied: [Trivia] = []
        for piece in pieces where piece != .blankLine || tidied.last != .blankLine { tidied.append(piece) }
        switch blankFirst {
        case true?: if tidied.first != .blankLine { tidied.insert(.blankLine, at: 0) }
        case false?: while tidied.first == .blankLine { tidied.removeFirst() }
        case nil: break
        }
        if trimEnd { while tidied.last == .blankLine { tidied.removeLast() } }
        return tidied
    }

    /// A block, and a list written a line per item, stand apart from their neighbours.
    static func spansLines(_ statement: Statement) -> Bool {
        switch statement {
        case .block: true
        case .list(let list): writtenOnLines(list)
        case .include, .rule: false
        }
    }

    static func writtenOnLines(_ list: ListBlock) -> Bool {
        list.itemsOnOwnLines || list.openingComment != nil || !list.closingTrivia.isEmpty
            || list.entries.contains { !$0.leadingTrivia.isEmpty || $0.trailingComment != nil }
    }

    /// A comment's lines: each starts with `#` and has no trailing blanks.
    static func commentLines(_ comment: String) -> [String] {
        comment.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var text = line
            while let last = text.last, last == " " || last == "\t" || last == "\r" { text = text.dropLast() }
            return text.hasPrefix("#") ? String(text) : "# " + text
        }
    }

    // MARK: Words

    /// True when `value` reads back as one word: printable ASCII without punctuation or `->`.
    static func isWord(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.allSatisfy(Lexer.isWordByte) && !value.contains("->")
    }

    /// How a word is written: keywords (`->` among them) as they are; values as words when
    /// they are words; free text (`include` paths, log prefixes) and other values as strings.
    enum Spelling {
        case keyword
        case value
        case text
    }

    static func spelling(_ value: String, _ spelling: Spelling) -> String {
        if spelling == .keyword || (spelling == .value && isWord(value)) { return value }
        var escaped = ""
        for character in value {
            if character == "\\" || character == "\"" { escaped.append("\\") }
            escaped.append(character)
        }
        return "\"" + escaped + "\""
    }

    private mutating func write(_ piece: String) {
        text += piece
        column += piece.count
    }

    private mutating func endLine(comment: String? = nil) {
        if let comment { write(Self.commentGap + Self.commentLines(comment).joined(separator: " ")) }
        text += "\n"
        line += 1
        column = 1
    }

    /// Writes `word` after a space (unless it starts the line) and returns it placed there.
    private mutating func word(_ word: Located<String>, _ spelling: Spelling) -> Located<String> {
        if column > 1 && text.utf8.last != UInt8(ascii: " ") { write(" ") }
        let spelled = Self.spelling(word.value, spelling)
        let start = SourceLocation(file: file, line: line, column: column)
        write(spelled)
        return Located(word.value, at: SourceRange(start: start, length: spelled.count))
    }

    /// Words separated by `separator` (`", "` in lists, `" "` for the two values of `attach`).
    private mutating func words(_ values: [Located<String>], separator: String, _ spelling: Spelling = .value)
        -> [Located<String>]
    {
        values.enumerated().map { at, value in
            if at > 0 { write(separator) }
            return word(value, spelling)
        }
    }

    private mutating func trivia(_ pieces: [Trivia], indent: String) {
        for piece in pieces {
            switch piece {
            case .blankLine: endLine()
            case .comment(let comment):
                for line in Self.commentLines(comment) {
                    write(indent + line)
                    endLine()
                }
            }
        }
    }

    // MARK: Nodes

    private mutating func print(_ file: SyntaxFile) -> SyntaxFile {
        var statements: [Statement] = []
        var previousSpansLines: Bool?
        for statement in file.statements {
            let spans = Self.spansLines(statement)
            // Nothing above the first statement; a blank line around a block; else as written.
            let blankFirst: Bool? = previousSpansLines.map { $0 || spans ? true : nil } ?? false
            statements.append(print(statement, blankFirst: blankFirst))
            previousSpansLines = spans
        }
        let end = Self.tidy(
            file.endTrivia, blankFirst: previousSpansLines.map { $0 ? true : nil } ?? false, trimEnd: true)
        let endComments = end.contains { $0 != .blankLine } ? end : []
        trivia(endComments, indent: "")
        return SyntaxFile(path: self.file, statements: statements, endTrivia: endComments)
    }

    private mutating func print(_ statement: Statement, blankFirst: Bool?) -> Statement {
        switch statement {
        case .include(var include):
            include.leadingTrivia = Self.tidy(include.leadingTrivia, blankFirst: blankFirst)
            trivia(include.leadingTrivia, indent: "")
            let placed = Include(
                keyword: word(include.keyword, .keyword), path: word(include.path, .text),
                leadingTrivia: include.leadingTrivia, trailingComment: include.trailingComment)
            endLine(comment: include.trailingComment)
            return .include(placed)
        case .block(let block): return .block(print(block, blankFirst: blankFirst))
        case .list(let list): return .list(print(list, blankFirst: blankFirst))
        case .rule(let rule):
            return .rule(print(rule, shape: Grammar.rules[rule.keyword.value], blankFirst: blankFirst, indent: ""))
        }
    }

    private mutating func print(_ block: Block, blankFirst: Bool?) -> Block {
        let leading = Self.tidy(block.leadingTrivia, blankFirst: blankFirst)
        trivia(leading, indent: "")
        let keyword = word(block.keyword, .keyword)
        let name = block.name.map { word($0, .value) }
        write(" {")
        endLine(comment: block.openingComment)
        let shapes = Grammar.settings[block.kind] ?? [:]
        let settings = block.settings.enumerated().map { at, setting in
            print(
                setting, shape: shapes[setting.keyword.value], blankFirst: at == 0 ? false : nil,
                indent: Self.indentation)
        }
        let closing = close(block.closingTrivia, isEmpty: settings.isEmpty, comment: block.trailingComment)
        return Block(
            kind: block.kind, keyword: keyword, name: name, settings: settings, leadingTrivia: leading,
            openingComment: block.openingComment, closingTrivia: closing, trailingComment: block.trailingComment)
    }

    /// A list item: its selector keyword, if it has one, then its value.
    private mutating func entry(_ entry: ListEntry) -> ListEntry {
        let selector = entry.selector.map { word($0, .keyword) }
        return ListEntry(word(entry.value, .value), selector: selector)
    }

    private mutating func print(_ list: ListBlock, blankFirst: Bool?) -> ListBlock {
        let leading = Self.tidy(list.leadingTrivia, blankFirst: blankFirst)
        trivia(leading, indent: "")
        let keyword = word(list.keyword, .keyword)
        let name = word(list.name, .value)
        write(" {")
        guard Self.writtenOnLines(list) else {
            let entries = list.entries.enumerated().map { at, entry in
                if at > 0 { write(",") }
                return self.entry(entry)
            }
            write(entries.isEmpty ? "}" : " }")
            endLine(comment: list.trailingComment)
            return ListBlock(
                kind: list.kind, keyword: keyword, name: name, entries: entries,
                leadingTrivia: leading, trailingComment: list.trailingComment)
        }
        endLine(comment: list.openingComment)
        let entries = list.entries.enumerated().map { at, entry in
            let entryLeading = Self.tidy(entry.leadingTrivia, blankFirst: at == 0 ? false : nil)
            trivia(entryLeading, indent: Self.indentation)
            write(Self.indentation)
            let written = self.entry(entry)
            if at < list.entries.count - 1 { write(",") }
            endLine(comment: entry.trailingComment)
            return ListEntry(
                written.value, selector: written.selector, leadingTrivia: entryLeading,
                trailingComment: entry.trailingComment)
        }
        let closing = close(list.closingTrivia, isEmpty: entries.isEmpty, comment: list.trailingComment)
        return ListBlock(
            kind: list.kind, keyword: keyword, name: name, entries: entries, itemsOnOwnLines: true,
            leadingTrivia: leading, openingComment: list.openingComment, closingTrivia: closing,
            trailingComment: list.trailingComment)
    }

    /// The comments before a block's `}`, the `}` and the comment after it; the comments as
    /// written.
    private mutating func close(_ closingTrivia: [Trivia], isEmpty: Bool, comment: String?) -> [Trivia] {
        let closing = Self.tidy(closingTrivia, blankFirst: isEmpty ? false : nil, trimEnd: true)
        trivia(closing, indent: Self.indentation)
        write("}")
        endLine(comment: comment)
        return closing
    }

    private mutating func print(_ setting: Setting, shape: SettingShape?, blankFirst: Bool?, indent: String)
        -> Setting
    {
        let leading = Self.tidy(setting.leadingTrivia, blankFirst: blankFirst)
        trivia(leading, indent: indent)
        write(indent)
        let keyword = word(setting.keyword, .keyword)
        let values = words(setting.values, separator: [.two, .oneOrTwo].contains(shape?.positional) ? " " : ", ")
        let clauses = setting.clauses.map { clause in
            Clause(
                keyword: word(clause.keyword, .keyword),
                values: words(
                    clause.values, separator: ", ", Grammar.textClauses.contains(clause.keyword.value) ? .text : .value)
            )
        }
        endLine(comment: setting.trailingComment)
        return Setting(
            keyword: keyword, values: values, clauses: clauses, leadingTrivia: leading,
            trailingComment: setting.trailingComment)
    }
}
