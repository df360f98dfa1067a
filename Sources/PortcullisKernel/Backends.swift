import Foundation
import JanssonKit
import Logging
import NftablesKit

/// Why the kernel side refused or failed; nothing was changed when this is thrown.
public struct ApplyError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A planned change to the kernel's ruleset: computed first, committed in one step.
struct Plan {
    /// What the owned tables held before, by snapshot extension (`iptables`, `nft.json`...).
    var before: [String: String] = [:]
    var isEmpty: Bool
    /// Whether a failed commit leaves the kernel as it was (one nftables transaction); if
    /// not (iptables, table by table), the applier puts the snapshot back.
    var atomic = true
    var change: AppliedChange = .replaced
    /// Tables the commit creates (`ip nat`), which rolling back removes again.
    var createdTables: [String] = []
    /// What the kernel holds after the commit when it is known without asking the kernel
    /// (an element change leaves the structure listing as it was).
    var after: [String: String]? = nil
    /// What the commit changes, chain by chain and set by set.
    var diff = RulesetDiff()
    /// Jumps into the owned chain the commit puts back first (`--alongside-docker`).
    var repairs: [JumpRepair] = []
    let commit: () throws(ApplyError) -> Void
}

/// How an apply changed the kernel.
public enum AppliedChange: Sendable, Equatable {
    /// Owned tables (or iptables chains) replaced as a whole.
    case replaced
    /// Only set and map elements added and removed, in one transaction.
    case elements(added: Int, removed: Int)
}

/// One way of talking to the kernel: plan a change from the wanted rendered files and the
/// previous generation's, commit it atomically, and put a generation's snapshot back.
protocol KernelBackend {
    /// - Parameters:
    ///   - wanted: rendered files by extension.
    ///   - previous: the generation currently applied, if any.
    ///   - takeOver: replace owned tables even if they hold rules Portcullis did not write.
    func plan(wanted: [String: String], previous: Generation?, takeOver: Bool) throws(ApplyError) -> Plan
    /// What the kernel holds now of what `generation` changed, to record as its `after`.
    func after(_ generation: Generation) throws(ApplyError) -> [String: String]
    /// What others changed since `generation` was applied, in a sentence; nil when nothing.
    func changes(since generation: Generation) throws(ApplyError) -> String?
    /// Puts back exactly what the kernel held before `generation`: its snapshot, and no table
    /// it created. Doing it twice is the same as doing it once.
    func restore(before generation: Generation) throws(ApplyError)
}

// MARK: - iptables

/// iptables-restore, one transaction per table, merging our rules with everyone else's
/// (see `IptablesOwnership`).
struct IptablesBackend: KernelBackend {
    let logger: Logger
    /// `.alongsideDocker`: only one user chain is owned (see `UserChainOwnership`).
    var scope: OwnershipScope = .layout

    static let tools = [
        "iptables": ("iptables-save", "iptables-restore"), "ip6tables": ("ip6tables-save", "ip6tables-restore"),
    ]

    func plan(wanted: [String: String], previous: Generation?, takeOver: Bool) throws(ApplyError) -> Plan {
        if case .alongsideDocker(let chain) = scope {
            return try planAlongside(wanted: wanted, previous: previous, takeOver: takeOver, chain: chain)
        }
        var change = TableChanges()
        for ext in Self.tools.keys.sorted() {
            try change.add(
                ext, wanted: SavedTable.parseAll(wanted[ext] ?? ""),
                previous: SavedTable.parseAll(previous?.applied[ext] ?? ""),
                snapshot: SavedTable.parseAll(previous?.before[ext] ?? ""))
        }
        let (restores, logger) = (change.restores, self.logger)
        return Plan(
            before: change.before, isEmpty: restores.isEmpty, atomic: false, createdTables: change.created,
            diff: RulesetDiff(from: change.oldLines, to: change.newLines)
        ) { () throws(ApplyError) in
            // Validate everything first, so that a rejected table leaves every table as it was;
            // a rejection that shows only at commit is undone by the applier from the snapshot.
            for (tool, text) in restores {
                logger.debug("\(tool) -c --test <<EOF\n\(text)EOF")
                let test = Tool.run([tool, "-c", "--test"], input: text)
                if test.status != 0 { throw Self.rejection(tool, test.error, input: text) }
            }
            for (tool, text) in restores {
                logger.debug("\(tool) -c <<EOF\n\(text)EOF")
                let result = Tool.run([tool, "-c"], input: text)
                if result.status != 0 { throw Self.rejection(tool, result.error, input: text) }
            }
        }
    }

    /// The tables one apply changes, tool by tool: what to restore, the snapshot of what they
    /// held, the tables it creates, and the lines for the plan's diff.
    struct TableChanges {
        var restores: [(tool: String, text: String)] = []
        var before: [String: String] = [:]
        var created: [String] = []
        var oldLines: [LineGroup] = []
        var newLines: [LineGroup] = []

        /// Merges one tool's wanted tables into its live ones (see `IptablesOwnership`).
        mutating func add(_ ext: String, wanted: [SavedTable], previous: [SavedTable], snapshot: [SavedTable])
            throws(ApplyError)
        {
            let names = (wanted.map(\.name) + previous.map(\.name)).reduce(into: [String]()) {
                if !$0.contains($1) { $0.append($1) }
            }
            let live = try IptablesBackend.save(ext)
            var input = ""
            var replaced = ""
            for name in names {
                let current = live.first { $0.name == name }
                let restoredPolicies = Dictionary(
                    (snapshot.first { $0.name == name }?.chains ?? []).filter { $0.policy != "-" }.map {
                        ($0.name, $0.policy)
                    }, uniquingKeysWith: { a, _ in a })
                let merged = IptablesOwnership.merge(
                    current: current, wanted: wanted.first { $0.name == name },
                    previous: previous.first { $0.name == name }, restoredPolicies: restoredPolicies)
                if let current, current.sameRules(as: merged) { continue }
                if current == nil && merged.rules.isEmpty && !wanted.contains(where: { $0.name == name }) { continue }
                input += merged.rendered(withCounters: true)
                replaced += current?.rendered(withCounters: true) ?? ""
                oldLines += LineGroup.iptables(current.map { [$0] } ?? [], tool: ext)
                newLines += LineGroup.iptables([merged], tool: ext)
                if current == nil { created.append("\(ext == "iptables" ? "ip" : "ip6") \(name)") }
            }
            guard !input.isEmpty else { return }
            restores.append((IptablesBackend.tools[ext]!.1, input))
            before[ext] = replaced
        }
    }

    /// The tool's message, with the input line it names (so the caller can trace it to the policy).
    static func rejection(_ tool: String, _ error: String, input: String) -> ApplyError {
        var message = "\(tool) rejected the ruleset: \(error.trimmingCharacters(in: .whitespacesAndNewlines))"
        let lines = input.split(separator: "\n", omittingEmptySubsequences: false)
        var rejected: Substring?
        if let number = error.firstMatch(of: #/line:? (\d+)/#).flatMap({ Int($0.1) }), number >= 1,
            number <= lines.count
        {
            rejected = lines[number - 1]
        }
        // iptables-nft reports some errors at the COMMIT line; the name it quotes finds the rule.
        if rejected.map({ !$0.contains("-A ") }) ?? true, let name = error.firstMatch(of: #/'([^']+)'/#)?.1 {
            rejected = lines.first { $0.contains("-A ") && $0.split(separator: " ").contains(name) } ?? rejected
        }
        if let rejected { message += "\n    rejected line: \(rejected)" }
        return ApplyError(message: message)
    }

    /// The live tables of one tool (`iptables-save -c`): one save of every table that exists,
    /// since `iptables-save -t TABLE` would create a missing table just by listing it.
    static func save(_ ext: String) throws(ApplyError) -> [SavedTable] {
        let tool = tools[ext]!.0
        let save = Tool.run([tool, "-c"])
        guard save.status == 0 else {
            throw ApplyError(message: "\(tool) failed: \(save.error.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return SavedTable.parseAll(save.output)
    }

    /// The names of the tables `generation` touched in one tool's part.
    static func touchedTables(_ generation: Generation, _ ext: String) -> Set<String> {
        let family = ext == "iptables" ? "ip " : "ip6 "
        return Set(SavedTable.parseAll(generation.before[ext] ?? "").map(\.name)).union(
            generation.createdTables.filter { $0.hasPrefix(family) }.map { String($0.dropFirst(family.count)) })
    }

    func after(_ generation: Generation) throws(ApplyError) -> [String: String] {
        if case .alongsideDocker(let chain) = scope { return try afterAlongside(generation, chain: chain) }
        var after: [String: String] = [:]
        for ext in Self.tools.keys {
            let touched = Self.touchedTables(generation, ext)
            guard !touched.isEmpty else { continue }
            after[ext] = try Self.save(ext).filter { touched.contains($0.name) }.map {
                $0.rendered(withCounters: false)
            }
            .joined()
        }
        return after
    }

    func changes(since generation: Generation) throws(ApplyError) -> String? {
        if case .alongsideDocker(let chain) = scope { return try changesAlongside(since: generation, chain: chain) }
        var changed: [String] = []
        for ext in Self.tools.keys.sorted() {
            let recorded = SavedTable.parseAll(generation.after[ext] ?? "")
            guard !recorded.isEmpty else { continue }
            let live = try Self.save(ext)
            for table in recorded where !(live.first { $0.name == table.name }?.sameRules(as: table) ?? false) {
                changed.append("\(ext) table \(table.name)")
            }
        }
        return changed.isEmpty
            ? nil : "\(changed.joined(separator: ", ")) changed since generation \(generation.number) was applied"
    }

    func restore(before generation: Generation) throws(ApplyError) {
        if case .alongsideDocker(let chain) = scope { return try restoreAlongside(before: generation, chain: chain) }
        for (ext, (_, restoreTool)) in Self.tools.sorted(by: { $0.key < $1.key }) {
            let touched = Self.touchedTables(generation, ext)
            guard !touched.isEmpty else { continue }
            let live = try Self.save(ext)
            let snapshot = SavedTable.parseAll(generation.before[ext] ?? "")
            let input = snapshot.filter { table in
                !(live.first { $0.name == table.name }?.sameRules(as: table) ?? false)
            }
            .map { $0.rendered(withCounters: true) }.joined()
            if !input.isEmpty {
                logger.debug("\(restoreTool) -c <<EOF\n\(input)EOF")
                let result = Tool.run([restoreTool, "-c"], input: input)
                if result.status != 0 { throw Self.rejection(restoreTool, result.error, input: input) }
            }
            let created = touched.subtracting(snapshot.map(\.name)).filter { name in live.contains { $0.name == name } }
            try removeTables(created.sorted(), ext: ext)
        }
    }

    /// Removes tables a generation created. iptables-nft keeps its tables as nftables tables
    /// (`ip nat`), which go as they came; iptables-legacy's tables cannot be removed, so they are
    /// left empty with the kernel's default ACCEPT policies, as a new table starts.
    func removeTables(_ names: [String], ext: String) throws(ApplyError) {
        guard !names.isEmpty else { return }
        let family = ext == "iptables" ? "ip" : "ip6"
        if Tool.run([ext, "-V"]).output.contains("nf_tables") {
            try NftablesBackend.run(names.map { "delete table \(family) \($0)\n" }.joined(), logger: logger)
            return
        }
        let live = try Self.save(ext)
        let emptied = names.compactMap { name in live.first { $0.name == name } }.map { table in
            var empty = SavedTable(name: table.name)
            empty.chains = table.chains.filter { $0.policy != "-" }.map {
                SavedTable.ChainDeclaration(name: $0.name, policy: "ACCEPT", counters: "[0:0]")
            }
            return empty.rendered(withCounters: true)
        }.joined()
        let restoreTool = Self.tools[ext]!.1
        let result = Tool.run([restoreTool, "-c"], input: emptied)
        if result.status != 0 { throw Self.rejection(restoreTool, result.error, input: emptied) }
    }
}

// MARK: - nftables

/// libnftables, one transaction for everything. Portcullis owns whole tables here: the tables
/// its layout declares. It refuses to replace a table that holds rules it did not write (a
/// table it finds on first apply, or one changed since its last apply) unless told to take over.
struct NftablesBackend: KernelBackend {
    let logger: Logger
    let json: Bool

    struct TableName: Hashable, Comparable {
        let family: String
        let name: String
        static func < (a: Self, b: Self) -> Bool { (a.family, a.name) < (b.family, b.name) }
        var spec: String { "\(family) \(name)" }
    }

    /// The tables a rendered file declares.
    static func tables(in text: String, json: Bool) -> [TableName] {
        if json {
            guard let document = try? JSON.parse(text), let objects = document["nftables"]?.arrayValue else {
                return []
            }
            return objects.compactMap { object in
                guard let table = object["table"], let family = table["family"]?.stringValue,
                    let name = table["name"]?.stringValue
                else { return nil }
                return TableName(family: family, name: name)
            }
        }
        return Substring(text).byteSplit("\n").compactMap { line in
            // The prefix test first: a regex on each of a large table's element lines costs seconds.
            guard line.hasPrefix("table "), let match = line.wholeMatch(of: #/table (\w+) ([A-Za-z0-9_-]+) \{/#)
            else { return nil }
            return TableName(family: String(match.1), name: String(match.2))
        }
    }

    /// The tables of the rendered files, read from the text when there is one (a large JSON
    /// document costs a parse).
    static func tables(in files: [String: String], json: Bool) -> [TableName] {
        if let text = files["nft"] { return tables(in: text, json: false) }
        return tables(in: files[json ? "nft.json" : "nft"] ?? "", json: json)
    }

    var ext: String { json ? "nft.json" : "nft" }

    func liveTables() throws(ApplyError) -> Set<TableName> {
        guard let context = try? NftContext() else { throw ApplyError(message: "cannot create a libnftables context") }
        let result = context.run("list tables")
        guard result.succeeded, let document = try? JSON.parse(result.output),
            let objects = document["nftables"]?.arrayValue
        else {
            throw ApplyError(
                message: "cannot list the tables: \(result.error.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return Set(
            objects.compactMap { object in
                guard let table = object["table"], let family = table["family"]?.stringValue,
                    let name = table["name"]?.stringValue
                else { return nil }
                return TableName(family: family, name: name)
            })
    }

    /// `list table` for each table that exists, without counters or handles; `terse` leaves
    /// out set elements.
    func listing(_ tables: [TableName], json: Bool = false, terse: Bool = false) -> String {
        guard let context = try? NftContext() else { return "" }
        context.jsonOutput = json
        context.stateless = true
        context.terse = terse
        return tables.sorted().map { context.run("list table \($0.spec)").output }.joined(separator: json ? "\n" : "")
    }

    func after(_ generation: Generation) throws(ApplyError) -> [String: String] {
        ["nft": listing(Self.tables(in: generation.applied, json: json), terse: true)]
    }

    func changes(since generation: Generation) throws(ApplyError) -> String? {
        let tables = Self.tables(in: generation.applied, json: json)
        if unchanged(since: generation, tables: tables.filter(try liveTables().contains)) { return nil }
        return
            "tables \(tables.map(\.spec).joined(separator: ", ")) changed since generation \(generation.number) applied them"
    }

    func restore(before generation: Generation) throws(ApplyError) {
        let snapshot = generation.before["nft.json"] ?? ""
        let owned = Set(Self.tables(in: generation.applied, json: json))
            .union(Self.tables(in: snapshot, json: true))
        try restore(snapshot: snapshot, deleting: owned.intersection(try liveTables()).sorted())
    }

    /// Whether the owned tables are as `generation` left them: nothing was committed since
    /// (the kernel's generation has not moved), or their structure lists as it did and their
    /// set elements are the ones it applied.
    func unchanged(since generation: Generation, tables: [TableName]) -> Bool {
        if let recorded = generation.kernelGeneration, RulesetGeneration.current() == recorded { return true }
        guard let applied = generation.applied["nft.json"].flatMap({ try? JSON.parse($0) }) else {
            return listing(tables) == generation.listingAfter  // a generation recorded before elements were compared
        }
        guard listing(tables, terse: true) == generation.listingAfter else { return false }
        let live = listing(tables, json: true).split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
        var listed = SetElements(document: .object([("nftables", .array([]))]))
        for document in live { listed.elements.merge(SetElements(document: document).elements) { a, _ in a } }
        return listed == SetElements(document: applied)
    }

    func plan(wanted: [String: String], previous: Generation?, takeOver: Bool) throws(ApplyError) -> Plan {
        let wantedText = wanted[ext]
        let isJSON = json
        let wantedTables = Set(Self.tables(in: wanted, json: isJSON))
        let previousTables = Set(previous.map { Self.tables(in: $0.applied, json: isJSON) } ?? [])
        let live = try liveTables()
        let owned = wantedTables.union(previousTables)
        let existing = owned.intersection(live).sorted()
        // The owned tables hold exactly what the previous generation applied.
        var verified = false
        if let previous {
            verified = unchanged(since: previous, tables: Array(previousTables.intersection(live)))
            if !verified && !takeOver {
                throw ApplyError(
                    message:
                        "tables \(previousTables.sorted().map(\.spec).joined(separator: ", ")) changed since generation \(previous.number) applied them; rerun with --take-over to replace them (what is there now is saved first)"
                )
            }
        }
        if !takeOver {
            let foreign = existing.filter { !previousTables.contains($0) }
            if !foreign.isEmpty {
                throw ApplyError(
                    message:
                        "table \(foreign.map(\.spec).joined(separator: ", ")) already exists and was not written by Portcullis; rerun with --take-over to replace it (it is saved first and comes back on rollback)"
                )
            }
        }
        // Nothing to do only if the kernel still holds it: with --take-over, tables changed by
        // someone else are replaced even when the wanted ruleset is the previous one.
        if let previous, verified, wantedText == previous.applied[ext], wantedTables == previousTables {
            return Plan(isEmpty: true) {}
        }
        let logger = self.logger
        let appliedBefore = verified && Set(existing).isSubset(of: previousTables) ? previous?.applied["nft.json"] : nil
        // What the owned tables hold now, in text: the previous generation's own text when the
        // kernel is verified to hold it, else the kernel's listing.
        let textBefore =
            verified && Set(existing).isSubset(of: previousTables)
            ? previous?.applied["nft"] ?? listing(existing) : listing(existing)
        let oldText = NftText(textBefore)
        let newText = NftText(wanted["nft"] ?? "")
        let diff = RulesetDiff(from: oldText.groups, to: newText.groups)
        // Only elements differ: send those, and keep the tables (and everything in them) in place.
        if let appliedBefore, previous?.applied["nft"] != nil, wantedTables == previousTables,
            let change = ElementChange(from: oldText, to: newText, diff: diff)
        {
            return Plan(
                before: ["nft.json": appliedBefore], isEmpty: false,
                change: .elements(added: change.added, removed: change.removed), after: previous?.after, diff: diff
            ) { () throws(ApplyError) in
                try Self.run(change.batch, logger: logger)
            }
        }
        var before: [String: String] = [:]
        if let appliedBefore {
            before["nft.json"] = appliedBefore  // verified above: no need to list it again
        } else if !existing.isEmpty {
            before["nft.json"] = try loadableSnapshot(of: existing)
        }
        // One transaction: the owned tables deleted and the wanted ones loaded.
        let batch =
            isJSON
            ? Self.restoreBatch(snapshot: wantedText ?? "", deleting: existing) ?? ""
            : existing.map { "delete table \($0.spec)\n" }.joined() + (wantedText ?? "")
        return Plan(before: before, isEmpty: false, diff: diff) { () throws(ApplyError) in
            try Self.run(batch, logger: logger)
        }
    }

    /// The owned tables as JSON, checked to load back: a snapshot libnftables could not load
    /// (iptables-nft's xtables expressions, say) would make the rollback fail, so such tables
    /// are refused before anything changes.
    func loadableSnapshot(of existing: [TableName]) throws(ApplyError) -> String {
        let snapshot = Self.mergeListings(listing(existing, json: true))
        guard let batch = Self.restoreBatch(snapshot: snapshot, deleting: existing),
            let context = try? NftContext(dryRun: true)
        else { return snapshot }
        let result = context.run(batch)
        guard result.succeeded else {
            throw ApplyError(
                message:
                    "tables \(existing.map(\.spec).joined(separator: ", ")) cannot be saved in a form that rollback could load back, so they are not replaced: \(result.error.trimmingCharacters(in: .whitespacesAndNewlines)) (tables that iptables-nft manages are for --backend iptables)"
            )
        }
        return snapshot
    }

    /// Restores a snapshot: deletes the given tables and loads the saved JSON, in one transaction.
    func restore(snapshot: String, deleting tables: [TableName]) throws(ApplyError) {
        guard let batch = Self.restoreBatch(snapshot: snapshot, deleting: tables) else { return }
        try Self.run(batch, logger: logger)
    }

    /// The libnftables JSON batch that deletes `tables` and loads `snapshot`; nil when empty.
    static func restoreBatch(snapshot: String, deleting tables: [TableName]) -> String? {
        var objects: [JSON] = tables.map {
            .object([
                ("delete", .object([("table", .object([("family", .string($0.family)), ("name", .string($0.name))]))]))
            ])
        }
        if let parsed = try? JSON.parse(snapshot), let items = parsed["nftables"]?.arrayValue {
            objects += items.filter { $0["metainfo"] == nil }
        }
        return objects.isEmpty ? nil : JSON.object([("nftables", .array(objects))]).rendered(indent: 0)
    }

    static func run(_ batch: String, logger: Logger) throws(ApplyError) {
        logger.debug("libnftables <<EOF\n\(batch)\nEOF")
        guard let context = try? NftContext() else { throw ApplyError(message: "cannot create a libnftables context") }
        let result = context.run(batch)
        if !result.succeeded {
            throw ApplyError(
                message:
                    "libnftables rejected the ruleset: \(result.error.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Several `list table` JSON documents as one (one metainfo, all objects).
    static func mergeListings(_ listings: String) -> String {
        var objects: [JSON] = [.object([("metainfo", .object([("json_schema_version", .integer(1))]))])]
        for line in listings.split(separator: "\n") {
            if let parsed = try? JSON.parse(String(line)), let items = parsed["nftables"]?.arrayValue {
                objects += items.filter { $0["metainfo"] == nil }
            }
        }
        return JSON.object([("nftables", .array(objects))]).rendered(indent: 2) + "\n"
    }
}
