import JanssonKit
import PortcullisIR
import PortcullisNet

/// Reads a libnftables JSON ruleset (`nft -j list ruleset`, a saved file, the live ruleset
/// listed through libnftables, or Portcullis' own nftables-json output) into the IR.
///
/// Tables of the `ip`, `ip6` and `inet` families are read with their chains, named sets and
/// maps (plain, interval, concatenated keys, verdict and data maps) and rules. Expressions
/// Portcullis models become IR matches and actions; anything else (iptables-nft's `xt`
/// expressions, anonymous sets, `reject`, marks, ...) is kept as an opaque match or target with a
/// warning naming its JSON path, never dropped. Counters, handles and comments are read
/// safely: counter values and handles are ignored, comments kept. Tables of other families
/// (`bridge`, `arp`, `netdev`) cannot be held by the IR: they are listed in `skippedTables`
/// with a warning. A document that is not a ruleset is an error naming the JSON path.
public struct NftJSONReader {
    public let source: String

    public init(source: String = "nft -j list ruleset") { self.source = source }

    /// What was read: the ruleset, what was kept opaque or skipped, and the tables of families
    /// the IR cannot hold ("bridge b"), which an audit must not pass over in silence.
    public struct Result: Sendable {
        public var ruleset: Ruleset
        public var warnings: [ReadWarning]
        public var skippedTables: [String]
    }

    /// Statement keys that end a rule's evaluation (or decide its verdict): unmodelled ones
    /// are kept as opaque targets, other unmodelled expressions as opaque matches.
    static let terminalStatements: Set<String> = [
        "reject", "queue", "vmap", "dnat", "snat", "redirect", "tproxy", "synproxy", "fwd", "continue", "masquerade",
        "goto", "jump", "accept", "drop", "return",
    ]

    /// Named stateful objects a rule may refer to; they hold no verdicts of their own.
    static let statefulObjects: Set<String> = [
        "counter", "quota", "limit", "ct helper", "ct timeout", "ct expectation", "secmark", "synproxy", "flowtable",
    ]

    public func read(_ text: String) throws(ReadError) -> Result {
        let document: JSON
        do {
            document = try JSON.parse(text)
        } catch {
            throw ReadError(line: error.line, message: "invalid JSON at column \(error.column): \(error.message)")
        }
        // libnftables writes integers only; a real would have to be rounded or range-checked
        // wherever it is used, so it is refused once, by path.
        if let (path, number) = document.firstReal {
            throw ReadError(line: 0, message: "\(path): \(number) is not an integer (libnftables writes integers only)")
        }
        guard let objects = document["nftables"]?.arrayValue else {
            throw ReadError(line: 0, message: "$: expected an object with an 'nftables' array")
        }
        var reader = DocumentReader(reader: self)
        for (index, object) in objects.enumerated() { try reader.read(object, path: "$.nftables[\(index)]") }
        return Result(
            ruleset: Ruleset(tables: reader.tables), warnings: reader.warnings, skippedTables: reader.skipped)
    }

    /// What has been read of one document so far, by name, so that a document of many tables,
    /// chains and sets is read in linear time.
    private struct DocumentReader {
        let reader: NftJSONReader
        var tables: [Table] = []
        var warnings: [ReadWarning] = []
        /// Tables by "family name".
        var tablePositions: [String: Int] = [:]
        /// The names in each table.
        var names: [TableNames] = []
        /// Tables of families the IR cannot hold, as "family name".
        var skipped: [String] = []
        var skippedKeys: Set<String> = []

        /// One object of the `nftables` array.
        mutating func read(_ object: JSON, path: String) throws(ReadError) {
            guard case .object(let members) = object, members.count == 1, let kind = members.first?.0,
                let body = members.first?.1
            else {
                throw ReadError(line: 0, message: "\(path): expected an object with one key (table, chain, rule, ...)")
            }
            let at = "\(path).\(kind)"
            if kind == "metainfo" { return }
            if kind == "table" { return try readTable(body, at) }
            guard ["chain", "set", "map", "rule"].contains(kind) || NftJSONReader.statefulObjects.contains(kind) else {
                throw ReadError(line: 0, message: "\(path): unsupported object '\(kind)'")
            }
            if isSkipped(body) { return }
            switch kind {
            case "chain": try readChain(body, at)
            case "set", "map": try readSet(body, kind: kind, at)
            case "rule": try readRule(body, at, path: path)
            default:
                warnings.append(
                    ReadWarning(path: at, message: "named \(kind) object not read (it holds no rules or verdicts)"))
            }
        }

        func isSkipped(_ object: JSON) -> Bool {
            skippedKeys.contains("\(object["family"]?.stringValue ?? "") \(object["table"]?.stringValue ?? "")")
        }

        func tableIndex(_ object: JSON, _ path: String) throws(ReadError) -> Int {
            let key = "\(try reader.string(object, "family", path)) \(try reader.string(object, "table", path))"
            guard let index = tablePositions[key] else {
                throw ReadError(line: 0, message: "\(path): table \(key) is not declared")
            }
            return index
        }

        mutating func readTable(_ body: JSON, _ at: String) throws(ReadError) {
            let name = try reader.string(body, "name", at)
            let familyName = try reader.string(body, "family", at)
            guard let family = TableFamily(rawValue: familyName) else {
                skipped.append("\(familyName) \(name)")
                skippedKeys.insert("\(familyName) \(name)")
                warnings.append(
                    ReadWarning(
                        path: at,
                        message: "table \(familyName) \(name) not read: Portcullis reads ip, ip6 and inet tables only"))
                return
            }
            guard tablePositions["\(familyName) \(name)"] == nil else {
                throw ReadError(line: 0, message: "\(at): table \(familyName) \(name) listed twice")
            }
            tablePositions["\(familyName) \(name)"] = tables.count
            names.append(TableNames())
            // Rules keep the order their expressions were listed in, so that they render back as read.
            tables.append(Table(family: family, name: name, keepsMatchOrder: true))
        }

        mutating func readChain(_ body: JSON, _ at: String) throws(ReadError) {
            let table = try tableIndex(body, at)
            let name = try reader.string(body, "name", at)
            guard names[table].chains[name] == nil else {
                throw ReadError(line: 0, message: "\(at): chain \(name) listed twice")
            }
            var chain = Chain(name: name)
            if body["hook"] != nil { chain.base = try reader.baseChain(body, at) }
            names[table].chains[name] = tables[table].chains.count
            tables[table].chains.append(chain)
        }

        mutating func readSet(_ body: JSON, kind: String, _ at: String) throws(ReadError) {
            let table = try tableIndex(body, at)
            do throws(ReadError) {
                let (set, setWarnings) = try reader.set(body, path: at)
                guard names[table].sets.insert(set.name).inserted else {
                    throw ReadError(line: 0, message: "\(at): set \(set.name) listed twice")
                }
                tables[table].sets.append(set)
                if !names[table].unreadSets.contains(set.name) { names[table].usableSets[set.name] = set }
                warnings += setWarnings
            } catch {
                guard error.unsupported else { throw error }
                // A set of a type the IR cannot hold: rules that use it are kept opaque.
                let name = try reader.string(body, "name", at)
                names[table].unreadSets.insert(name)
                names[table].usableSets[name] = nil
                warnings.append(ReadWarning(path: at, message: "\(kind) \(name) not read: \(error.message)"))
            }
        }

        mutating func readRule(_ body: JSON, _ at: String, path: String) throws(ReadError) {
            let table = try tableIndex(body, at)
            let chainName = try reader.string(body, "chain", at)
            guard let chainIndex = names[table].chains[chainName] else {
                throw ReadError(line: 0, message: "\(at): chain \(chainName) is not declared")
            }
            var parser = RuleReader(path: at, family: tables[table].family, sets: names[table].usableSets)
            var rule = try parser.rule(body)
            let handle = body["handle"]?.integerValue.map { " (handle \($0))" } ?? ""
            rule.provenance = Provenance(statement: "rule at \(path)\(handle)", file: reader.source)
            tables[table].chains[chainIndex].rules.append(rule)
            warnings += parser.warnings
        }
    }

    /// The names read so far in one table.
    struct TableNames {
        /// Chains by name, with their positions in the table.
        var chains: [String: Int] = [:]
        var sets: Set<String> = []
        /// Sets of types the IR cannot hold.
        var unreadSets: Set<String> = []
        /// The sets rules may look up: read, and sharing no name with a set that could not be read.
        var usableSets: [String: NamedSet] = [:]
    }

    func string(_ object: JSON, _ key: String, _ path: String) throws(ReadError) -> String {
        guard let value = object[key]?.stringValue else {
            throw ReadError(line: 0, message: "\(path): missing '\(key)'")
        }
        return value
    }

    /// nft's named priorities, for documents that spell them out.
    static let namedPriorities: [String: Int] = [
        "raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
    ]

    func baseChain(_ chain: JSON, _ path: String) throws(ReadError) -> BaseChain {
        let hookName = try string(chain, "hook", path)
        guard let hook = Hook(rawValue: hookName) else {
            throw ReadError(line: 0, message: "\(path): hook '\(hookName)' is not supported")
        }
        let typeName = try string(chain, "type", path)
        guard let type = ChainType(rawValue: typeName) else {
            throw ReadError(line: 0, message: "\(path): chain type '\(typeName)' is not supported")
        }
        let priority: Int
        if let number = chain["prio"]?.integerValue {
            // The kernel holds a chain priority in 32 bits.
            guard Int32(exactly: number) != nil else {
                throw ReadError(line: 0, message: "\(path).prio: \(number) is out of range (a 32-bit priority)")
            }
            priority = number
        } else if let name = chain["prio"]?.stringValue, let number = Self.namedPriorities[name] {
            priority = number
        } else {
            throw ReadError(line: 0, message: "\(path): missing or unknown 'prio'")
        }
        let policyName = chain["policy"]?.stringValue ?? "accept"
        guard let policy = ChainPolicy(rawValue: policyName) else {
            throw ReadError(line: 0, message: "\(path): policy '\(policyName)' is not supported")
        }
        return BaseChain(type: type, hook: hook, priority: priority, policy: policy)
    }
}
