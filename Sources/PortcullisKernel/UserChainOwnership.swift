import Foundation

/// What an apply owns, recorded with each generation so that rollback and drift checks keep to
/// what it changed.
public enum OwnershipScope: Sendable, Equatable {
    /// Everything the layout writes: for iptables its chains and its rules in built-in chains
    /// (`IptablesOwnership`), for nftables its tables.
    case layout
    /// Alongside a Docker daemon that keeps writing its own rules (`--alongside-docker`): only
    /// `place`. For iptables that is a user chain of the `filter` table (`DOCKER-USER`),
    /// replaced with `iptables-restore --noflush`, whose jump must stay the first rule of
    /// `FORWARD` (`UserChainOwnership`); for nftables, the tables the applied file declares
    /// (`portcullis-user`), replaced whole as with `.layout`.
    case alongsideDocker(place: String)

    /// How the state directory's `meta.json` names the alongside scope.
    static let alongsideDockerName = "alongside-docker"
}

/// A `FORWARD` chain whose jump to the owned user chain is not its one first rule, and what an
/// apply does about it (moby#48560: a daemon restart or another tool can move the jump, and
/// rules above it then decide before the policy does).
public struct JumpRepair: Sendable, Equatable {
    /// `iptables` or `ip6tables`.
    public let tool: String
    public let chain: String
    /// Where `-j CHAIN` stood in FORWARD, 1-based (empty: nowhere).
    public let positions: [Int]

    var place: String { (tool == "ip6tables" ? "ip6tables " : "") + "FORWARD's jump to \(chain)" }

    var found: String {
        switch positions.count {
        case 0: "\(tool == "ip6tables" ? "ip6tables " : "")FORWARD had no jump to \(chain)"
        case 1: "\(place) was at position \(positions[0])"
        default:
            "\(place) stood \(positions.count) times, at positions \(positions.map(String.init).joined(separator: ", "))"
        }
    }

    /// What apply did: `FORWARD's jump to DOCKER-USER was at position 3, now first`.
    public var applied: String { "\(found), now first" }

    /// What plan says apply will do.
    public var planned: String { "\(found); apply puts it first" }
}

/// One tool's part of an alongside apply, as the state directory keeps it: the owned chain's
/// rules (with counters), whether the chain existed, and where `FORWARD` jumped to it. As
/// text, a comment line with the jumps, then `iptables-save` lines of the chain alone:
///
///     # portcullis alongside-docker: FORWARD jumps to DOCKER-USER at 1
///     *filter
///     :DOCKER-USER - [0:0]
///     [0:0] -A DOCKER-USER -j RETURN
///     COMMIT
struct UserChainState: Equatable {
    var exists: Bool
    var rules: [SavedTable.RuleLine]
    /// 1-based positions in FORWARD of `-A FORWARD -j CHAIN`.
    var jumps: [Int]

    static let marker = "# portcullis alongside-docker: FORWARD jumps to "

    /// The chain as the live `filter` table holds it.
    init(_ filter: SavedTable?, chain: String) {
        exists = filter?.chains.contains { $0.name == chain } ?? false
        rules = filter?.rules.filter { $0.chain == chain } ?? []
        let jump = UserChainOwnership.jump(chain)
        jumps = (filter?.rules.filter { $0.chain == "FORWARD" } ?? []).enumerated().compactMap {
            $0.element.text == jump ? $0.offset + 1 : nil
        }
    }

    init(exists: Bool, rules: [SavedTable.RuleLine], jumps: [Int]) {
        self.exists = exists
        self.rules = rules
        self.jumps = jumps
    }

    /// Reads what `rendered` wrote; nil when `text` is not such a record.
    init?(parsing text: String, chain: String) {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(Self.marker) }),
            let positions = line.firstMatch(of: #/ at (.*)$/#)?.1
        else { return nil }
        self.init(SavedTable.parseAll(text).first { $0.name == "filter" }, chain: chain)
        jumps = positions == "none" ? [] : positions.split(separator: ",").compactMap { Int($0) }
    }

    func rendered(chain: String, withCounters: Bool) -> String {
        var text =
            Self.marker + "\(chain) at " + (jumps.isEmpty ? "none" : jumps.map(String.init).joined(separator: ","))
            + "\n"
        guard exists else { return text }
        var table = SavedTable(name: "filter")
        table.chains = [.init(name: chain, policy: "-", counters: "[0:0]")]
        table.rules = rules
        text += table.rendered(withCounters: withCounters)
        return text
    }

    var ruleTexts: [String] { rules.map(\.text) }

    /// The same chain, rules and jumps, counters aside.
    func holdsTheSame(as other: UserChainState) -> Bool {
        exists == other.exists && ruleTexts == other.ruleTexts && jumps == other.jumps
    }
}

/// Ownership of one user chain beside a Docker daemon (`OwnershipScope.alongsideDocker`): the
/// chain is replaced with `iptables-restore --noflush`, whose chain declaration flushes it, so
/// Docker's chains and every other rule are never part of the transaction. The jump to it is
/// kept the first rule of FORWARD, in the same transaction. The snapshot is the chain's
/// rules and the jumps' positions; rollback restores only those.
enum UserChainOwnership {
    /// The rule Docker writes at the top of FORWARD: `-A FORWARD -j DOCKER-USER`.
    static func jump(_ chain: String) -> String { "-A FORWARD -j \(chain)" }

    /// Docker's own content of a fresh DOCKER-USER (20.10 appends `-j RETURN`; 28 and 29 leave it
    /// empty): not someone else's rules.
    static func isDockersDefault(_ rule: SavedTable.RuleLine, chain: String) -> Bool {
        rule.text == "-A \(chain) -j RETURN"
    }

    /// The repair of FORWARD's jumps, planned from its rules; nil when the jump is already the
    /// one first rule.
    static func repair(forward rules: [SavedTable.RuleLine], tool: String, chain: String) -> JumpRepair? {
        let positions = rules.enumerated().compactMap { $0.element.text == jump(chain) ? $0.offset + 1 : nil }
        return positions == [1] ? nil : JumpRepair(tool: tool, chain: chain, positions: positions)
    }

    /// The `--noflush` lines that fix `repair`: every jump deleted (each `-D` removes the first
    /// match), one inserted at the top.
    static func repairLines(_ repair: JumpRepair) -> [String] {
        Array(repeating: "-D FORWARD -j \(repair.chain)", count: repair.positions.count)
            + ["-I FORWARD 1 -j \(repair.chain)"]
    }

    /// The `--noflush` input that puts `snapshot` back over `live`, or nil when they agree.
    /// Jumps go back to their recorded positions (clamped to FORWARD's length); a chain that did
    /// not exist is removed.
    static func restoreInput(_ snapshot: UserChainState, live: SavedTable?, chain: String) -> String? {
        let current = UserChainState(live, chain: chain)
        guard !current.holdsTheSame(as: snapshot) else { return nil }
        var lines = ["*filter"]
        if snapshot.exists {
            lines.append(":\(chain) - [0:0]")
            lines += snapshot.rules.map { "\($0.counters) \($0.text)" }
        }
        lines += Array(repeating: "-D FORWARD -j \(chain)", count: current.jumps.count)
        var length = (live?.rules.filter { $0.chain == "FORWARD" }.count ?? 0) - current.jumps.count
        for position in snapshot.jumps.sorted() {
            lines.append("-I FORWARD \(min(position, length + 1)) -j \(chain)")
            length += 1
        }
        if !snapshot.exists && current.exists { lines += ["-F \(chain)", "-X \(chain)"] }
        return (lines + ["COMMIT"]).joined(separator: "\n") + "\n"
    }
}

extension IptablesBackend {
    /// The owned chain an alongside apply replaces, from the files Portcullis renders: a
    /// `filter` table declaring only that chain. Anything else is refused, so a mistake never
    /// reaches Docker's chains.
    static func ownedChainRules(_ text: String, chain: String, tool: String) throws(ApplyError) -> [String]? {
        let tables = SavedTable.parseAll(text)
        guard !tables.isEmpty else { return nil }
        for table in tables {
            let others =
                table.chains.map(\.name).filter { $0 != chain } + table.rules.map(\.chain).filter { $0 != chain }
            guard table.name == "filter", others.isEmpty else {
                throw ApplyError(
                    message:
                        "--alongside-docker owns only filter \(chain), but the \(tool) input also has table \(table.name)"
                        + (others.isEmpty ? "" : " chain \(others[0])") + "; nothing was changed")
            }
        }
        return tables.flatMap(\.rules).map(\.text)
    }

    /// Plans an alongside apply: per tool, the owned chain flushed and refilled with
    /// `--noflush`, and the jump repaired, in one transaction per tool.
    func planAlongside(wanted: [String: String], previous: Generation?, takeOver: Bool, chain: String)
        throws(ApplyError) -> Plan
    {
        var restores: [(tool: String, text: String)] = []
        var before: [String: String] = [:]
        var created: [String] = []
        var oldLines: [LineGroup] = []
        var newLines: [LineGroup] = []
        var repairs: [JumpRepair] = []
        for ext in Self.tools.keys.sorted() {
            let wantedRules = try Self.ownedChainRules(wanted[ext] ?? "", chain: chain, tool: ext)
            let previousRules = try previous.flatMap { p throws(ApplyError) in
                try Self.ownedChainRules(p.applied[ext] ?? "", chain: chain, tool: ext)
            }
            // A chain the previous generation filled and this one does not want is emptied.
            guard let rules = wantedRules ?? previousRules.map({ _ in [] }) else { continue }
            let live = try Self.save(ext)
            let filter = live.first { $0.name == "filter" }
            let current = UserChainState(filter, chain: chain)
            if !takeOver {
                if let previous, let left = UserChainState(parsing: previous.after[ext] ?? "", chain: chain),
                    left.ruleTexts != current.ruleTexts
                {
                    throw ApplyError(
                        message:
                            "\(ext) \(chain) changed since generation \(previous.number) applied it; rerun with --take-over to replace it (what is there now is saved first)"
                    )
                }
                let foreign = current.rules.filter { !UserChainOwnership.isDockersDefault($0, chain: chain) }
                if previous == nil, let first = foreign.first {
                    throw ApplyError(
                        message:
                            "\(ext) \(chain) holds \(foreign.count) rule\(foreign.count == 1 ? "" : "s") Portcullis did not write (\(first.text)); rerun with --take-over to replace \(foreign.count == 1 ? "it" : "them") (saved first, back on rollback)"
                    )
                }
            }
            let forward = filter?.rules.filter { $0.chain == "FORWARD" } ?? []
            let repair = wantedRules == nil ? nil : UserChainOwnership.repair(forward: forward, tool: ext, chain: chain)
            if current.exists && current.ruleTexts == rules && repair == nil { continue }
            var input = ["*filter", ":\(chain) - [0:0]"] + rules
            if let repair {
                input += UserChainOwnership.repairLines(repair)
                repairs.append(repair)
                let place = LineGroup.Key(kind: .chain, place: "\(ext) filter FORWARD")
                let others = forward.map(\.text).filter { $0 != UserChainOwnership.jump(chain) }
                oldLines.append(LineGroup(key: place, lines: forward.map(\.text)))
                newLines.append(LineGroup(key: place, lines: [UserChainOwnership.jump(chain)] + others))
            }
            restores.append((Self.tools[ext]!.1, (input + ["COMMIT"]).joined(separator: "\n") + "\n"))
            before[ext] = current.rendered(chain: chain, withCounters: true)
            if filter == nil { created.append("\(ext == "iptables" ? "ip" : "ip6") filter") }
            let place = LineGroup.Key(kind: .chain, place: "\(ext) filter \(chain)")
            oldLines.append(LineGroup(key: place, lines: current.exists ? [":\(chain) -"] + current.ruleTexts : []))
            newLines.append(LineGroup(key: place, lines: [":\(chain) -"] + rules))
        }
        let logger = self.logger
        return Plan(
            before: before, isEmpty: restores.isEmpty, atomic: restores.count < 2, createdTables: created,
            diff: RulesetDiff(from: oldLines, to: newLines), repairs: repairs
        ) { () throws(ApplyError) in
            for (tool, text) in restores {
                logger.debug("\(tool) --noflush --test <<EOF\n\(text)EOF")
                let test = Tool.run([tool, "--noflush", "--test"], input: text)
                if test.status != 0 { throw Self.rejection(tool, test.error, input: text) }
            }
            for (tool, text) in restores {
                logger.debug("\(tool) --noflush <<EOF\n\(text)EOF")
                let result = Tool.run([tool, "--noflush"], input: text)
                if result.status != 0 { throw Self.rejection(tool, result.error, input: text) }
            }
        }
    }

    /// The owned chain and jumps as the kernel holds them now, for each tool the generation
    /// touched.
    func afterAlongside(_ generation: Generation, chain: String) throws(ApplyError) -> [String: String] {
        var after: [String: String] = [:]
        for ext in Self.tools.keys where generation.before[ext] != nil {
            let filter = try Self.save(ext).first { $0.name == "filter" }
            after[ext] = UserChainState(filter, chain: chain).rendered(chain: chain, withCounters: false)
        }
        return after
    }

    /// Whether the owned chain's rules are still those the generation left; the jump's place is
    /// not drift (the daemon moves it on restart; apply repairs it).
    func changesAlongside(since generation: Generation, chain: String) throws(ApplyError) -> String? {
        var changed: [String] = []
        for ext in Self.tools.keys.sorted() {
            guard let left = UserChainState(parsing: generation.after[ext] ?? "", chain: chain) else { continue }
            let live = UserChainState(try Self.save(ext).first { $0.name == "filter" }, chain: chain)
            if live.exists != left.exists || live.ruleTexts != left.ruleTexts { changed.append("\(ext) \(chain)") }
        }
        return changed.isEmpty
            ? nil : "\(changed.joined(separator: ", ")) changed since generation \(generation.number) was applied"
    }

    /// Puts back the owned chain and the jumps as they were before `generation`; a `filter`
    /// table the generation created is removed.
    func restoreAlongside(before generation: Generation, chain: String) throws(ApplyError) {
        for (ext, (_, restoreTool)) in Self.tools.sorted(by: { $0.key < $1.key }) {
            guard let snapshot = UserChainState(parsing: generation.before[ext] ?? "", chain: chain) else { continue }
            let filter = try Self.save(ext).first { $0.name == "filter" }
            if generation.createdTables.contains("\(ext == "iptables" ? "ip" : "ip6") filter") {
                if filter != nil { try removeTables(["filter"], ext: ext) }
                continue
            }
            guard let input = UserChainOwnership.restoreInput(snapshot, live: filter, chain: chain) else { continue }
            logger.debug("\(restoreTool) -c --noflush <<EOF\n\(input)EOF")
            let result = Tool.run([restoreTool, "-c", "--noflush"], input: input)
            if result.status != 0 { throw Self.rejection(restoreTool, result.error, input: input) }
        }
    }
}
