import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// A layout lowers a checked policy into the firewall IR: which tables and chains exist and
/// which rules they hold, in the order a given Docker version (or Portcullis' own design)
/// would leave them. One type per layout, each in its own file.
public protocol Layout: Sendable {
    /// The name used with `--layout` and in golden file names.
    var name: String { get }
    /// One line for `--help` and the docs.
    var summary: String { get }
    /// The kinds of firewall the layout can be written for.
    var firewalls: Set<Firewall> { get }
    /// Builds the ruleset, or reports the parts of the policy this layout cannot express.
    func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError>
    /// Builds the ruleset for one kind of firewall. Layouts whose rules do not depend on it
    /// (the iptables-era Docker layouts, rendered as nft by translation) keep the default.
    func lower(_ policy: Policy, for firewall: Firewall) -> Result<Ruleset, DiagnosticError>
}

extension Layout {
    public var firewalls: Set<Firewall> { Set(Firewall.allCases) }

    public func lower(_ policy: Policy, for firewall: Firewall) -> Result<Ruleset, DiagnosticError> {
        lower(policy)
    }
}

/// Every layout Portcullis knows, by name.
public enum Layouts {
    public static let all: [any Layout] = [
        Docker15Layout(), Docker2010Layout(), Docker2010Layout(era: .docker23), Docker2010Layout(era: .docker25),
        Docker28Layout(), Docker29Layout(),
        RefusingGatewayModes(NativeLayout()),
    ]

    public static func named(_ name: String) -> (any Layout)? { all.first { $0.name == name } }

    public static var names: [String] { all.map(\.name) }
}

extension Origin {
    var provenance: Provenance {
        Provenance(statement: statement, file: location.file, line: location.line, column: location.column)
    }

    var range: SourceRange { SourceRange(start: location, length: 1) }
}

extension Provenance {
    /// Rules Docker writes whatever the policy says (chain skeleton, global jumps).
    static let daemon = Provenance(statement: "docker daemon start")
}

/// The iptables tables Docker layouts write to (see `XtablesTableKind` for their built-in
/// chains, hooks and priorities).
typealias XtablesTable = XtablesTableKind

extension XtablesTableKind {
    /// An empty table with all built-in chains, as iptables-restore creates it.
    func emptyTable(family: TableFamily, forwardPolicy: ChainPolicy = .accept) -> Table {
        Table(
            family: family, name: rawValue,
            chains: builtinChains.map { name, hook in
                Chain(
                    name: name,
                    base: baseChain(name, policy: self == .filter && hook == .forward ? forwardPolicy : .accept))
            })
    }
}

/// Replays the `iptables -I`/`-A` calls a Docker daemon makes, so that the final rule order is
/// the one its history produces (Docker inserts some rules at the top and appends others).
struct XtablesHistory {
    var tables: [XtablesTable: Table] = [:]
    let family: TableFamily
    /// What each chain holds, for Docker's "add unless present" check in constant time.
    private var present: [String: Set<RuleKey>] = [:]

    /// A rule as `iptables -C` compares it: matches (the comment is one), effects and target,
    /// not its origin. Two statements that expand to the same packet matches stay two rules.
    private struct RuleKey: Hashable {
        let matches: [Match]
        let effects: [Effect]
        let action: Action?
        let comment: RuleComment?

        init(_ rule: Rule) {
            matches = rule.matches
            effects = rule.effects
            action = rule.action
            comment = rule.comment
        }
    }

    init(family: TableFamily, forwardPolicy: ChainPolicy) {
        self.family = family
        for table in [XtablesTable.filter, .nat] {
            tables[table] = table.emptyTable(family: family, forwardPolicy: forwardPolicy)
        }
    }

    mutating func newChain(_ table: XtablesTable, _ name: String) {
        if tables[table] == nil { tables[table] = table.emptyTable(family: family) }
        if tables[table]!.chain(name) == nil { tables[table]!.chains.append(Chain(name: name)) }
    }

    /// Edits a chain in place (no copy of its rules).
    private mutating func edit(_ table: XtablesTable, _ chain: String, _ body: (inout Chain) -> Void) {
        newChain(table, chain)
        let index = tables[table]!.chains.firstIndex { $0.name == chain }!
        body(&tables[table]!.chains[index])
    }

    /// Records the rule as present; false when an identical one already is.
    private mutating func add(_ table: XtablesTable, _ chain: String, _ rule: Rule) -> Bool {
        present["\(table.rawValue)/\(chain)", default: []].insert(RuleKey(rule)).inserted
    }

    /// `iptables -I CHAIN` (position 1), skipped when an identical rule exists, like Docker's
    /// `-C` check before every add.
    mutating func insert(_ table: XtablesTable, _ chain: String, _ rule: Rule) {
        guard add(table, chain, rule) else { return }
        edit(table, chain) { $0.rules.insert(rule, at: 0) }
    }

    /// `iptables -I CHAIN` for each rule from the last to the first, so that they end up on top
    /// in their order; done as one block (one insert per rule shifts the chain each time, which
    /// is quadratic with thousands of policy rules).
    mutating func insertOnTop(_ table: XtablesTable, _ chain: String, _ rules: [Rule]) {
        var kept: [Rule] = []
        for rule in rules.reversed() where add(table, chain, rule) { kept.append(rule) }
        guard !kept.isEmpty else { return }  // nothing inserted creates no chain
        edit(table, chain) { $0.rules.insert(contentsOf: kept.reversed(), at: 0) }
    }

    /// `iptables -A CHAIN`, skipped when an identical rule exists.
    mutating func append(_ table: XtablesTable, _ chain: String, _ rule: Rule) {
        guard add(table, chain, rule) else { return }
        edit(table, chain) { $0.rules.append(rule) }
    }

    /// Docker's `EnsureJumpRule`: delete the jump wherever it is, then insert it at the top.
    mutating func ensureJumpOnTop(_ table: XtablesTable, _ chain: String, to target: String) {
        let jump = Rule([], .jump(target), provenance: .daemon)
        _ = add(table, chain, jump)
        edit(table, chain) { chain in
            chain.rules.removeAll { $0.matches.isEmpty && $0.action == .jump(target) }
            chain.rules.insert(jump, at: 0)
        }
    }

    /// Tables in the given order (`iptables-nft-save` prints mangle, raw, filter, nat).
    func ruleset(order: [XtablesTable]) -> [Table] { order.compactMap { tables[$0] } }
}

/// Collects "this layout cannot express ..." errors.
struct LayoutDiagnostics {
    var diagnostics: [Diagnostic] = []
    let layout: String

    mutating func unsupported(_ what: String, at origin: Origin, hint: String? = nil) {
        diagnostics.append(
            Diagnostic("layout \(layout) cannot express \(what)", at: origin.range, hint: hint))
    }

    /// For layouts that write only Docker's default gateway mode: every network that asks for
    /// another one, at its `gateway-mode` line.
    mutating func refuseGatewayModes(_ policy: Policy) {
        for network in policy.networks where network.gatewayMode4 != .nat {
            unsupported(
                "gateway-mode \(network.gatewayMode4.rawValue) (network '\(network.name)')",
                at: network.gatewayModeOrigin ?? network.origin,
                hint: "gateway modes other than nat are written by the docker-28 and docker-29 layouts")
        }
    }

    func result(_ ruleset: @autoclosure () -> Ruleset) -> Result<Ruleset, DiagnosticError> {
        diagnostics.isEmpty ? .success(ruleset()) : .failure(DiagnosticError(diagnostics))
    }
}

/// A layout that writes only the `nat` gateway mode and does not check for others itself: a
/// policy with a network in another mode is refused (with the layout's own diagnostics, if any),
/// whichever command lowers it.
struct RefusingGatewayModes: Layout {
    let base: any Layout

    init(_ base: any Layout) { self.base = base }

    var name: String { base.name }
    var summary: String { base.summary }
    var firewalls: Set<Firewall> { base.firewalls }

    func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        refusing(policy, base.lower(policy))
    }

    func lower(_ policy: Policy, for firewall: Firewall) -> Result<Ruleset, DiagnosticError> {
        refusing(policy, base.lower(policy, for: firewall))
    }

    func refusing(_ policy: Policy, _ lowered: Result<Ruleset, DiagnosticError>) -> Result<Ruleset, DiagnosticError> {
        var problems = LayoutDiagnostics(layout: name)
        problems.refuseGatewayModes(policy)
        guard !problems.diagnostics.isEmpty else { return lowered }
        if case .failure(let error) = lowered { problems.diagnostics += error.diagnostics }
        return .failure(DiagnosticError(problems.diagnostics))
    }
}
