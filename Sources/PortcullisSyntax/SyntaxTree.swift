import PortcullisNet

/// The syntax tree of one policy file: statements with the words they were written with and
/// where. Values stay text here; `PortcullisPolicy` interprets them (addresses, ports, names)
/// so that every semantic error can point at the exact word.
///
/// Comments and blank lines ride along as trivia on the nodes they stand next to, so that the
/// `Printer` can write a file back in its canonical form without losing any of them.
public struct SyntaxFile: Sendable, Hashable {
    public let path: String
    public var statements: [Statement]
    /// Comments (and blank lines) after the last statement.
    public var endTrivia: [Trivia]

    public init(path: String, statements: [Statement], endTrivia: [Trivia] = []) {
        self.path = path
        self.statements = statements
        self.endTrivia = endTrivia
    }
}

/// What stands between tokens and means nothing to the compiler, kept for the printer.
public enum Trivia: Sendable, Hashable {
    /// A whole-line comment: its text from the `#` on, without trailing blanks.
    case comment(String)
    /// One or more empty lines (the printer keeps one).
    case blankLine
}

public enum Statement: Sendable, Hashable {
    /// `include "other.policy"`
    case include(Include)
    /// `host { ... }`, `network NAME { ... }`, `container NAME { ... }`
    case block(Block)
    /// `group NAME { a, b }`, `addresses NAME { ... }`, `service NAME { ... }`
    case list(ListBlock)
    /// `allow A -> B ...`, `deny A -> B ...`, `egress A -> B ...`
    case rule(Setting)
}

public struct Include: Sendable, Hashable {
    public let keyword: Located<String>
    /// The path as written, relative to the including file.
    public let path: Located<String>
    /// Comments and blank lines above the statement.
    public var leadingTrivia: [Trivia]
    /// The comment ending the statement's line.
    public var trailingComment: String?

    public init(
        keyword: Located<String> = .unplaced("include"), path: Located<String>, leadingTrivia: [Trivia] = [],
        trailingComment: String? = nil
    ) {
        self.keyword = keyword
        self.path = path
        self.leadingTrivia = leadingTrivia
        self.trailingComment = trailingComment
    }
}

public enum BlockKind: String, Sendable, Hashable, CaseIterable {
    case host
    case network
    case container
}

public enum ListKind: String, Sendable, Hashable, CaseIterable {
    case group
    case addresses
    case service
}

public struct Block: Sendable, Hashable {
    public let kind: BlockKind
    public let keyword: Located<String>
    /// Absent only for `host`, which has no name.
    public let name: Located<String>?
    public let settings: [Setting]
    /// Comments and blank lines above the block.
    public var leadingTrivia: [Trivia]
    /// The comment ending the line of the opening `{`.
    public var openingComment: String?
    /// Comments and blank lines after the last setting, before the closing `}`.
    public var closingTrivia: [Trivia]
    /// The comment ending the line of the closing `}`.
    public var trailingComment: String?

    public init(
        kind: BlockKind, keyword: Located<String>? = nil, name: Located<String>?, settings: [Setting],
        leadingTrivia: [Trivia] = [], openingComment: String? = nil, closingTrivia: [Trivia] = [],
        trailingComment: String? = nil
    ) {
        self.kind = kind
        self.keyword = keyword ?? .unplaced(kind.rawValue)
        self.name = name
        self.settings = settings
        self.leadingTrivia = leadingTrivia
        self.openingComment = openingComment
        self.closingTrivia = closingTrivia
        self.trailingComment = trailingComment
    }
}

public struct ListBlock: Sendable, Hashable {
    public let kind: ListKind
    public let keyword: Located<String>
    public let name: Located<String>
    public let entries: [ListEntry]
    /// Written one item per line (as it was, or because comments stand among the items);
    /// otherwise the list is written on one line, `{ a, b }`.
    public var itemsOnOwnLines: Bool
    public var leadingTrivia: [Trivia]
    public var openingComment: String?
    public var closingTrivia: [Trivia]
    public var trailingComment: String?

    public var items: [Located<String>] { entries.map(\.value) }

    public init(
        kind: ListKind, keyword: Located<String>? = nil, name: Located<String>, entries: [ListEntry],
        itemsOnOwnLines: Bool = false, leadingTrivia: [Trivia] = [], openingComment: String? = nil,
        closingTrivia: [Trivia] = [], trailingComment: String? = nil
    ) {
        self.kind = kind
        self.keyword = keyword ?? .unplaced(kind.rawValue)
        self.name = name
        self.entries = entries
        self.itemsOnOwnLines = itemsOnOwnLines
        self.leadingTrivia = leadingTrivia
        self.openingComment = openingComment
        self.closingTrivia = closingTrivia
        self.trailingComment = trailingComment
    }
}

/// One item of a list, with the comments around it when the list is written a line per item.
public struct ListEntry: Sendable, Hashable {
    /// For a group item that selects containers from an inventory: `compose` or `label`
    /// (`Grammar.groupSelectors`), with what it selects as the value.
    public let selector: Located<String>?
    public let value: Located<String>
    public var leadingTrivia: [Trivia]
    public var trailingComment: String?

    public init(
        _ value: Located<String>, selector: Located<String>? = nil, leadingTrivia: [Trivia] = [],
        trailingComment: String? = nil
    ) {
        self.selector = selector
        self.value = value
        self.leadingTrivia = leadingTrivia
        self.trailingComment = trailingComment
    }
}

/// One line of a block, or a top-level rule: a keyword, its positional values, and clauses
/// introduced by their own keywords (`mac ...`, `from a, b`, `-> target`, `port 80/tcp`).
public struct Setting: Sendable, Hashable {
    public let keyword: Located<String>
    public let values: [Located<String>]
    public let clauses: [Clause]
    /// Comments and blank lines above the setting.
    public var leadingTrivia: [Trivia]
    /// The comment ending the setting's line.
    public var trailingComment: String?

    public init(
        keyword: Located<String>, values: [Located<String>], clauses: [Clause] = [], leadingTrivia: [Trivia] = [],
        trailingComment: String? = nil
    ) {
        self.keyword = keyword
        self.values = values
        self.clauses = clauses
        self.leadingTrivia = leadingTrivia
        self.trailingComment = trailingComment
    }

    public func clause(_ keyword: String) -> Clause? { clauses.first { $0.keyword.value == keyword } }
}

public struct Clause: Sendable, Hashable {
    public let keyword: Located<String>
    public let values: [Located<String>]

    public init(keyword: Located<String>, values: [Located<String>]) {
        self.keyword = keyword
        self.values = values
    }
}

extension Located<String> {
    /// A word of a tree built in memory (by `import`), not read from a file: it has a place
    /// only once printed (`Printer.print(_:)` returns the tree placed where it wrote each word).
    public static func unplaced(_ value: String) -> Self {
        Located(value, at: SourceRange(start: SourceLocation(file: "", line: 0, column: 0), length: value.count))
    }
}
