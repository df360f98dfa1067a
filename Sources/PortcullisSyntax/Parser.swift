import PortcullisNet

/// Recursive-descent parser from tokens to a `SyntaxFile`.
///
/// On a syntax error it records a diagnostic that says what was expected, then skips to the
/// next line that starts a statement, so one run reports every independent error.
///
/// Comments and blank lines go on the nodes they stand next to (`Trivia`): those above a node
/// are its leading trivia, a comment after its last token is its trailing comment.
public struct Parser {
    private let tokens: [Token]
    private let trivia: TokenTrivia
    private var position = 0
    private var diagnostics: [Diagnostic] = []
    private let file: String

    public static func parse(_ text: String, file: String) -> (SyntaxFile, [Diagnostic]) {
        let (tokens, trivia, lexDiagnostics) = Lexer.tokenize(text, file: file)
        var parser = Parser(tokens: tokens, trivia: trivia, file: file)
        let statements = parser.parseFile()
        let syntax = SyntaxFile(path: file, statements: statements, endTrivia: trivia.leading[tokens.count - 1] ?? [])
        return (syntax, lexDiagnostics + parser.diagnostics)
    }

    private init(tokens: [Token], trivia: TokenTrivia, file: String) {
        self.tokens = tokens
        self.trivia = trivia
        self.file = file
    }

    /// The trivia of a node made of the tokens `first...last`: the lines above its first token
    /// and the comment ending its last. Comments on the lines the node spans in between (a
    /// list continued on the next line) move above it, in their order: the printer writes the
    /// node on one line.
    private func trivia(from first: Int, through last: Int) -> (leading: [Trivia], trailing: String?) {
        var leading = trivia.leading[first] ?? []
        if first < last, tokens[(first + 1)...last].contains(where: \.startsLine) {
            for index in first...last {
                if index > first { leading += (trivia.leading[index] ?? []).filter { $0 != .blankLine } }
                if index < last, let comment = trivia.trailing[index] { leading.append(.comment(comment)) }
            }
        }
        return (leading, trivia.trailing[last])
    }

    private struct Failure: Error {}

    private var current: Token { tokens[position] }
    private mutating func advance() -> Token {
        let token = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    private func located(_ token: Token) -> Located<String> { Located(token.text, at: token.range) }

    private mutating func fail(_ expected: String, hint: String? = nil) -> Failure {
        diagnostics.append(
            Diagnostic("expected \(expected), found \(current.describedForError)", at: current.range, hint: hint))
        return Failure()
    }

    private mutating func parseFile() -> [Statement] {
        var statements: [Statement] = []
        while current.kind != .end {
            do {
                statements.append(try parseStatement())
            } catch {
                skipToNextStatement()
            }
        }
        return statements
    }

    /// Skips past the failed statement: to the next line-initial top-level keyword outside braces.
    private mutating func skipToNextStatement() {
        var depth = 0
        _ = advance()
        while current.kind != .end {
            if current.kind == .openBrace { depth += 1 }
            if current.kind == .closeBrace {
                depth -= 1
                if depth < 0 {
                    _ = advance()
                    depth = 0
                    continue
                }
            }
            if depth <= 0 && current.startsLine && current.kind == .word
                && Grammar.topLevelKeywords.contains(current.text)
            {
                return
            }
            _ = advance()
        }
    }

    private mutating func parseStatement() throws -> Statement {
        let token = current
        guard token.kind == .word else {
            throw fail("a statement (\(Grammar.topLevelKeywords.joined(separator: ", ")))")
        }
        if token.text == "include" {
            let first = position
            let keyword = located(advance())
            guard current.kind == .string else {
                throw fail("a quoted file name after 'include'", hint: "write include \"common.policy\"")
            }
            let path = located(advance())
            let (leading, trailing) = trivia(from: first, through: position - 1)
            return .include(Include(keyword: keyword, path: path, leadingTrivia: leading, trailingComment: trailing))
        }
        if let kind = BlockKind(rawValue: token.text) {
            return .block(try parseBlock(kind))
        }
        if let kind = ListKind(rawValue: token.text) {
            return .list(try parseList(kind))
        }
        if let shape = Grammar.rules[token.text] {
            return .rule(try parseSetting(shape: shape))
        }
        let suggestion = closestMatch(token.text, in: Grammar.topLevelKeywords)
        diagnostics.append(
            Diagnostic(
                "unknown statement '\(token.text)'", at: token.range,
                hint: suggestion.map { "did you mean '\($0)'?" }
                    ?? "statements are: \(Grammar.topLevelKeywords.joined(separator: ", "))"))
        throw Failure()
    }

    private mutating func parseName(after keyword: String) throws -> Located<String> {
        guard current.kind == .word else { throw fail("a name after '\(keyword)'") }
        return located(advance())
    }

    private mutating func expectOpenBrace(_ what: String) throws {
        guard current.kind == .openBrace else { throw fail("'{' to open the \(what)") }
        _ = advance()
    }

    private mutating func parseBlock(_ kind: BlockKind) throws -> Block {
        let first = position
        let keyword = located(advance())
        let name = kind == .host ? nil : try parseName(after: kind.rawValue)
        try expectOpenBrace("\(kind.rawValue) block")
        let (leading, openingComment) = trivia(from: first, through: position - 1)
        let shapes = Grammar.settings[kind]!
        var settings: [Setting] = []
        while current.kind != .closeBrace {
            if current.kind == .end {
                throw fail("'}' to close the \(kind.rawValue) block opened at line \(keyword.range.start.line)")
            }
            if current.kind == .word, current.startsLine, shapes[current.text] == nil,
                Grammar.topLevelKeywords.contains(current.text)
            {
                // A statement where a setting was expected: the block was not closed. Say so
                // once, and read on from that statement.
                let opened = name.map { "\(kind.rawValue) \($0.value)" } ?? kind.rawValue
                diagnostics.append(
                    Diagnostic(
                        "missing '}' to close the \(opened) block opened at line \(keyword.range.start.line)",
                        at: current.range,
                        hint: "'\(current.text)' starts a new statement; close the block before it"))
                return Block(
                    kind: kind, keyword: keyword, name: name, settings: settings, leadingTrivia: leading,
                    openingComment: openingComment, closingTrivia: [], trailingComment: nil)
            }
            guard current.kind == .word, let shape = shapes[current.text] else {
                let known = shapes.keys.sorted()
                let hint =
                    current.kind == .word
                    ? closestMatch(current.text, in: known).map { "did you mean '\($0)'?" }
                        ?? "\(kind.rawValue) settings are: \(known.joined(separator: ", "))"
                    : nil
                if current.kind == .word {
                    diagnostics.append(
                        Diagnostic(
                            "unknown \(kind.rawValue) setting '\(current.text)'", at: current.range, hint: hint))
                    skipLineInBlock()
                    continue
                }
                throw fail("a \(kind.rawValue) setting or '}'")
            }
            do {
                settings.append(try parseSetting(shape: shape))
            } catch {
                skipLineInBlock()
            }
        }
        let close = position
        _ = advance()
        return Block(
            kind: kind, keyword: keyword, name: name, settings: settings, leadingTrivia: leading,
            openingComment: openingComment, closingTrivia: trivia.leading[close] ?? [],
            trailingComment: trivia.trailing[close])
    }

    /// After an error inside a block: skip to the next line (or the block's closing brace).
    private mutating func skipLineInBlock() {
        if current.kind == .closeBrace { return }
        _ = advance()
        while current.kind != .end && current.kind != .closeBrace && !current.startsLine { _ = advance() }
    }

    private mutating func parseList(_ kind: ListKind) throws -> ListBlock {
        let first = position
        let keyword = located(advance())
        let name = try parseName(after: kind.rawValue)
        try expectOpenBrace("\(kind.rawValue) list")
        let open = position - 1
        var items: [(selector: Located<String>?, value: Located<String>, index: Int)] = []
        while current.kind != .closeBrace {
            switch current.kind {
            case .word:
                var selector: Located<String>?
                if kind == .group, Grammar.groupSelectors.contains(current.text), position + 1 < tokens.count,
                    [.word, .string].contains(tokens[position + 1].kind), !tokens[position + 1].startsLine
                {
                    selector = located(advance())
                }
                items.append((selector, located(current), position))
                _ = advance()
            case .comma: _ = advance()
            case .end:
                throw fail("'}' to close the \(kind.rawValue) list opened at line \(keyword.range.start.line)")
            default: throw fail("a list item, ',' or '}'")
            }
        }
        let close = position
        _ = advance()
        let (leading, openingComment) = trivia(from: first, through: open)
        // An item owns the commas after it on its line (a comma starting a line goes with the
        // next item), the first item those before it, the last everything up to the '}'.
        var ends = items.map { item in
            var end = item.index
            while end + 1 < close && tokens[end + 1].kind == .comma && !tokens[end + 1].startsLine { end += 1 }
            return end
        }
        if !ends.isEmpty { ends[ends.count - 1] = close - 1 }
        let entries = items.indices.map { at in
            let (itemLeading, itemTrailing) = trivia(from: at == 0 ? open + 1 : ends[at - 1] + 1, through: ends[at])
            return ListEntry(
                items[at].value, selector: items[at].selector, leadingTrivia: itemLeading,
                trailingComment: itemTrailing)
        }
        return ListBlock(
            kind: kind, keyword: keyword, name: name, entries: entries,
            itemsOnOwnLines: tokens[(open + 1)...close].contains(where: \.startsLine), leadingTrivia: leading,
            openingComment: openingComment, closingTrivia: trivia.leading[close] ?? [],
            trailingComment: trivia.trailing[close])
    }

    private mutating func parseValues(_ arity: Arity, after keyword: Located<String>, describing what: String) throws
        -> [Located<String>]
    {
        func value(continuingList: Bool = false) throws -> Located<String> {
            guard current.kind == .word || current.kind == .string, continuingList || !current.startsLine else {
                if current.startsLine {
                    // The value is missing at the end of the line: point there, not at the next line.
                    let end = SourceLocation(
                        file: keyword.range.start.file, line: keyword.range.start.line,
                        column: keyword.range.start.column + keyword.range.length)
                    diagnostics.append(
                        Diagnostic("expected \(what) after '\(keyword.value)'", at: SourceRange(start: end, length: 1)))
                    throw Failure()
                }
                throw fail("\(what) after '\(keyword.value)'")
            }
            return located(advance())
        }
        switch arity {
        case .none: return []
        case .one: return [try value()]
        case .two: return [try value(), try value()]
        case .oneOrTwo:
            let first = try value()
            guard current.kind == .word || current.kind == .string, !current.startsLine,
                current.kind == .string || !Grammar.clauseKeywords.contains(current.text)
            else { return [first] }
            return [first, try value()]
        case .list:
            var values = [try value()]
            while current.kind == .comma {
                _ = advance()
                values.append(try value(continuingList: true))
            }
            return values
        }
    }

    private mutating func parseSetting(shape: SettingShape) throws -> Setting {
        let first = position
        let keyword = located(advance())
        let values = try parseValues(shape.positional, after: keyword, describing: shape.valueDescription)
        var clauses: [Clause] = []
        while !current.startsLine,
            let clause = shape.clauses.first(where: { $0.keyword == current.text && current.kind != .string })
        {
            if clauses.contains(where: { $0.keyword.value == clause.keyword }) {
                diagnostics.append(Diagnostic("'\(clause.keyword)' given twice", at: current.range))
                throw Failure()
            }
            let clauseKeyword = located(advance())
            let clauseValues = try parseValues(clause.arity, after: clauseKeyword, describing: "a value")
            clauses.append(Clause(keyword: clauseKeyword, values: clauseValues))
        }
        if let missing = shape.clauses.first(where: {
            $0.required && !clauses.map(\.keyword.value).contains($0.keyword)
        }) {
            throw fail(
                "'\(missing.keyword)' in '\(keyword.value)'", hint: "write \(keyword.value) SOURCE -> DESTINATION")
        }
        if !current.startsLine && current.kind != .closeBrace && current.kind != .end {
            let options = shape.clauses.map { "'\($0.keyword)'" }
            throw fail(
                options.isEmpty
                    ? "end of line after '\(keyword.value)'" : "\(options.joined(separator: ", ")) or end of line",
                hint: "each setting stands on a line of its own")
        }
        let (leading, trailing) = trivia(from: first, through: position - 1)
        return Setting(
            keyword: keyword, values: values, clauses: clauses, leadingTrivia: leading, trailingComment: trailing)
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
public func closestMatch(_ word: String, in candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(1, min(word.count, best.0.count) / 3) ? best.0 : nil
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours each cost 1, so `hots` is one edit from `host`.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}
