/// The syntax tree of one policy file: statements with the words they were written with and
/// where. Values stay text here; `PortcullisPolicy` interprets them (addresses, ports, names)
/// so that every semantic error can point at the exact word.
public struct SyntaxFile: Sendable, Hashable {
    public let path: String
    public let statements: [Statement]
}

public enum Statement: Sendable, Hashable {
    /// `include "other.policy"`
    case include(Located<String>)
    /// `host { ... }`, `network NAME { ... }`, `container NAME { ... }`
    case block(Block)
    /// `group NAME { a, b }`, `addresses NAME { ... }`, `service NAME { ... }`
    case list(ListBlock)
    /// `allow A -> B ...`, `deny A -> B ...`, `egress A -> B ...`
    case rule(Setting)
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
}

public struct ListBlock: Sendable, Hashable {
    public let kind: ListKind
    public let keyword: Located<String>
    public let name: Located<String>
    public let items: [Located<String>]
}

/// One line of a block, or a top-level rule: a keyword, its positional values, and clauses
/// introduced by their own keywords (`mac ...`, `from a, b`, `-> target`, `port 80/tcp`).
public struct Setting: Sendable, Hashable {
    public let keyword: Located<String>
    public let values: [Located<String>]
    public let clauses: [Clause]

    public func clause(_ keyword: String) -> Clause? { clauses.first { $0.keyword.value == keyword } }
}

public struct Clause: Sendable, Hashable {
    public let keyword: Located<String>
    public let values: [Located<String>]
}
