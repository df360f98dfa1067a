import Foundation
import JanssonKit
import PortcullisRender

/// What one apply changed, kept so that it can be rolled back: the files that were applied,
/// a snapshot of what they replaced, and what the kernel held right after.
public struct Generation: Sendable {
    public let number: Int
    public let backend: Backend
    public let layout: String
    public let policy: String
    public let appliedAt: String
    /// Rendered files by extension (`iptables`, `ip6tables`, `nft`, `nft.json`).
    public let applied: [String: String]
    /// What the owned tables held before this generation, by extension (`iptables`,
    /// `ip6tables`: whole tables as `iptables-save -c` printed them; `nft.json`: the owned
    /// tables as libnftables listed them). Rolling back loads exactly this.
    public let before: [String: String]
    /// What the kernel held right after the apply, to see changes made by others since:
    /// `iptables`/`ip6tables` the changed tables without counters, `nft` the owned tables as a
    /// terse listing (set elements are compared with `applied["nft.json"]`).
    public let after: [String: String]
    /// Tables that did not exist before this generation created them (`ip nat`, `ip6 filter`),
    /// so that rolling back removes them again.
    public let createdTables: [String]
    /// The kernel's nftables ruleset generation right after the apply: while it has not moved,
    /// nothing can have changed (see `RulesetGeneration`).
    public let kernelGeneration: UInt32?
    /// What the generation owned: the layout's chains and tables, or (`--alongside-docker`)
    /// only the place Docker leaves to users. Rollback and drift checks keep to it.
    public var scope: OwnershipScope = .layout

    /// The owned nftables tables as listed right after the apply, without set elements.
    public var listingAfter: String { after["nft"] ?? "" }
}

public struct StateError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The state directory: numbered generations (the last few are kept), the lock that
/// serialises every command that changes the kernel, the journal of a kernel change in
/// progress, and the record of an apply waiting for confirmation.
///
///     STATE/lock
///     STATE/journal.json                 a kernel change in progress (see `Journal`)
///     STATE/pending.json                 an apply awaiting `portcullis confirm`
///     STATE/generations/000007/meta.json        sizes and hashes of every file below
///     STATE/generations/000007/applied.nft ...  what was applied
///     STATE/generations/000007/before.nft.json  what it replaced (iptables: before.iptables)
///     STATE/generations/000007/after.nft        what the kernel held right after
///
/// A generation is written whole into `generations/.partial-000007`, made durable, and only
/// then renamed into place, so a numbered folder is always complete; every file is checked
/// against its size and hash before it is used.
public struct StateStore: Sendable {
    public let directory: String
    public static let generationsKept = 5

    public init(directory: String) { self.directory = directory }

    var generationsDirectory: String { directory + "/generations" }
    var journalPath: String { directory + "/journal.json" }
    var pendingPath: String { directory + "/pending.json" }

    func folder(_ number: Int) -> String { generationsDirectory + "/" + String(format: "%06d", number) }

    /// Whether the state directory exists (commands that only read it don't create it).
    public var exists: Bool { FileManager.default.fileExists(atPath: generationsDirectory) }

    public func prepare() throws(StateError) {
        do {
            try FileManager.default.createDirectory(atPath: generationsDirectory, withIntermediateDirectories: true)
        } catch {
            throw StateError(message: "cannot create the state directory \(directory): \(error.localizedDescription)")
        }
        // Folders of generations whose writing was interrupted: never used, removed here.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: generationsDirectory)) ?? []
        where name.hasPrefix(".partial-") {
            try? FileManager.default.removeItem(atPath: generationsDirectory + "/" + name)
        }
    }

    /// The numbers of the generations recorded, oldest first.
    public func generationNumbers() -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: generationsDirectory)) ?? []).compactMap { name in
            name.utf8.count == 6 && name.utf8.allSatisfy { (48...57).contains($0) } ? Int(name) : nil
        }.sorted()
    }

    /// The newest generation; an error if it is damaged (an older one is never used in its place).
    public func latest() throws(StateError) -> Generation? {
        guard let number = generationNumbers().last else { return nil }
        return try load(number)
    }

    /// The latest generation's number and what its metadata records of the files it applied
    /// (name, size, hash), without reading them: two generations that applied the same files
    /// record the same. nil without a readable generation.
    public func latestApplied() -> (number: Int, files: String)? {
        guard let number = generationNumbers().last,
            let text = try? String(contentsOfFile: folder(number) + "/meta.json", encoding: .utf8),
            case .object(let entries)? = (try? JSON.parse(text))?["files"]
        else { return nil }
        let applied = entries.filter { $0.0.hasPrefix("applied.") }.sorted { $0.0 < $1.0 }
        return (number, JSON.object(applied).rendered(indent: 0))
    }

    /// The latest generation's layout, backend and one applied file (`nft`), checked against
    /// the size and hash its metadata records, without reading its other files; nil when there
    /// is none or it does not check.
    public func latestApplied(_ fileExtension: String) -> (
        number: Int, layout: String, backend: Backend, text: String
    )? {
        let name = "applied." + fileExtension
        guard let number = generationNumbers().last,
            let metaText = try? String(contentsOfFile: folder(number) + "/meta.json", encoding: .utf8),
            let meta = try? JSON.parse(metaText), let layout = meta["layout"]?.stringValue,
            let backend = meta["backend"]?.stringValue.flatMap(Backend.init(rawValue:)),
            let entry = meta["files"]?[name], let size = entry["size"]?.integerValue,
            let hash = entry["fnv1a64"]?.stringValue.flatMap({ UInt64($0, radix: 16) }),
            let text = try? String(contentsOfFile: folder(number) + "/" + name, encoding: .utf8),
            Fingerprint(text) == Fingerprint(size: size, hash: hash)
        else { return nil }
        return (number, layout, backend, text)
    }

    /// `STATE/unsettled`: element changes `watch` sent to the kernel that no generation records
    /// yet. Its next full sync replaces what is there (`--take-over`), and so must an apply.
    public var hasUnsettledElements: Bool { FileManager.default.fileExists(atPath: directory + "/unsettled") }

    public func markUnsettledElements(_ unsettled: Bool) throws(StateError) {
        if unsettled {
            try DurableFile.write(
                "element changes of 'portcullis watch' that no generation records yet\n", to: directory + "/unsettled")
        } else if hasUnsettledElements {
            try DurableFile.remove(directory + "/unsettled")
        }
    }

    /// Reads a generation and checks every file against the size and hash its metadata records.
    public func load(_ number: Int) throws(StateError) -> Generation {
        let folder = folder(number)
        func damaged(_ why: String) -> StateError {
            StateError(
                message:
                    "generation \(number) in \(directory) is damaged: \(why); it was not used (move \(folder) aside once the ruleset is known to be right)"
            )
        }
        guard let metaText = try? String(contentsOfFile: folder + "/meta.json", encoding: .utf8) else {
            throw damaged("meta.json cannot be read")
        }
        guard let meta = try? JSON.parse(metaText), meta["generation"]?.integerValue == number,
            let backend = meta["backend"]?.stringValue.flatMap(Backend.init(rawValue:)),
            let layout = meta["layout"]?.stringValue, let policy = meta["policy"]?.stringValue,
            case .object(let fileEntries)? = meta["files"]
        else { throw damaged("meta.json is not a generation record") }
        var files: [String: String] = [:]
        for (name, entry) in fileEntries {
            guard name.hasPrefix("applied.") || name.hasPrefix("before.") || name.hasPrefix("after."),
                !name.contains("/"), let size = entry["size"]?.integerValue,
                let hash = entry["fnv1a64"]?.stringValue.flatMap({ UInt64($0, radix: 16) })
            else { throw damaged("meta.json lists \(name) without a size and hash") }
            guard let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8) else {
                throw damaged("\(name) is missing")
            }
            let found = Fingerprint(text)
            guard found == Fingerprint(size: size, hash: hash) else {
                throw damaged("\(name) holds \(found.size) bytes with hash \(found.hex), not the \(size) recorded")
            }
            files[name] = text
        }
        func group(_ prefix: String) -> [String: String] {
            Dictionary(
                uniqueKeysWithValues: files.filter { $0.key.hasPrefix(prefix) }.map {
                    (String($0.key.dropFirst(prefix.count)), $0.value)
                })
        }
        let kernelGeneration = meta["kernel_generation"]?.integerValue
        var scope = OwnershipScope.layout
        if let kind = meta["scope"]?.stringValue {
            guard kind == OwnershipScope.alongsideDockerName, let place = meta["owned"]?.stringValue, !place.isEmpty
            else { throw damaged("meta.json names an unknown scope '\(kind)'") }
            scope = .alongsideDocker(place: place)
        }
        return Generation(
            number: number, backend: backend, layout: layout, policy: policy,
            appliedAt: meta["applied_at"]?.stringValue ?? "", applied: group("applied."), before: group("before."),
            after: group("after."), createdTables: meta["created_tables"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            kernelGeneration: kernelGeneration.flatMap { UInt32(exactly: $0) }, scope: scope)
    }

    /// Records a generation before the kernel is changed: written whole into a temporary folder,
    /// made durable, then renamed to its number. Its `after` is filled in by `complete`.
    public func record(
        backend: Backend, layout: String, policy: String, applied: [String: String], before: [String: String],
        createdTables: [String], scope: OwnershipScope = .layout
    ) throws(StateError) -> Generation {
        let number = (generationNumbers().last ?? 0) + 1
        let generation = Generation(
            number: number, backend: backend, layout: layout, policy: policy,
            appliedAt: ISO8601DateFormatter().string(from: Date()), applied: applied, before: before, after: [:],
            createdTables: createdTables, kernelGeneration: nil, scope: scope)
        let partial = generationsDirectory + "/.partial-" + String(format: "%06d", number)
        do throws(StateError) {
            try? FileManager.default.removeItem(atPath: partial)
            do {
                try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
            } catch {
                throw StateError(message: "cannot create \(partial): \(error.localizedDescription)")
            }
            try writeFiles(of: generation, into: partial, groups: ["applied.", "before."])
            try DurableFile.rename(partial, to: folder(number))
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw StateError(message: "cannot record generation \(number) in \(directory): \(error.message)")
        }
        return generation
    }

    /// Adds what the kernel held right after the apply to a recorded generation, and drops the
    /// oldest generations beyond `generationsKept`.
    public func complete(_ generation: Generation, after: [String: String], kernelGeneration: UInt32?)
        throws(StateError) -> Generation
    {
        let completed = Generation(
            number: generation.number, backend: generation.backend, layout: generation.layout,
            policy: generation.policy, appliedAt: generation.appliedAt, applied: generation.applied,
            before: generation.before, after: after, createdTables: generation.createdTables,
            kernelGeneration: kernelGeneration, scope: generation.scope)
        try writeFiles(of: completed, into: folder(generation.number), groups: ["after."])
        for old in generationNumbers().dropLast(Self.generationsKept) { try? DurableFile.remove(folder(old)) }
        return completed
    }

    /// Writes the files of `groups` durably, then the metadata that lists every file (last, so
    /// that it never names a file that is not yet complete).
    private func writeFiles(of generation: Generation, into folder: String, groups: Set<String>) throws(StateError) {
        var entries: [(String, JSON)] = []
        let all = [("applied.", generation.applied), ("before.", generation.before), ("after.", generation.after)]
        for (prefix, files) in all {
            for (ext, text) in files.sorted(by: { $0.key < $1.key }) {
                if groups.contains(prefix) { try DurableFile.write(text, to: folder + "/" + prefix + ext) }
                let print = Fingerprint(text)
                entries.append(
                    (prefix + ext, .object([("size", .integer(print.size)), ("fnv1a64", .string(print.hex))])))
            }
        }
        var meta: [(String, JSON)] = [
            ("generation", .integer(generation.number)), ("backend", .string(generation.backend.rawValue)),
            ("layout", .string(generation.layout)), ("policy", .string(generation.policy)),
            ("applied_at", .string(generation.appliedAt)),
            ("created_tables", .array(generation.createdTables.map { .string($0) })), ("files", .object(entries)),
        ]
        if let kernel = generation.kernelGeneration { meta.append(("kernel_generation", .integer(Int(kernel)))) }
        if case .alongsideDocker(let place) = generation.scope {
            meta += [("scope", .string(OwnershipScope.alongsideDockerName)), ("owned", .string(place))]
        }
        try DurableFile.write(JSON.object(meta).rendered() + "\n", to: folder + "/meta.json")
    }

    /// Forgets a generation (after it was rolled back or undone).
    public func discard(_ number: Int) throws(StateError) { try DurableFile.remove(folder(number)) }

    // MARK: the journal

    /// Written durably before the kernel is changed and removed once the change is recorded:
    /// a journal found at the start of a command means a run was killed in between, and the
    /// generation it names is undone (see `Applier.settle`).
    public struct Journal: Sendable, Equatable {
        public enum Operation: String, Sendable { case apply, rollback }
        public let operation: Operation
        public let generation: Int
    }

    func beginJournal(_ journal: Journal) throws(StateError) {
        let text = JSON.object([
            ("operation", .string(journal.operation.rawValue)), ("generation", .integer(journal.generation)),
        ]).rendered()
        try DurableFile.write(text + "\n", to: journalPath)
    }

    func journal() throws(StateError) -> Journal? {
        guard FileManager.default.fileExists(atPath: journalPath) else { return nil }
        guard let text = try? String(contentsOfFile: journalPath, encoding: .utf8), let json = try? JSON.parse(text),
            let operation = json["operation"]?.stringValue.flatMap(Journal.Operation.init(rawValue:)),
            let generation = json["generation"]?.integerValue
        else {
            throw StateError(
                message:
                    "\(journalPath) is damaged: a kernel change was interrupted and it cannot be told which; check the ruleset, then remove the file"
            )
        }
        return Journal(operation: operation, generation: generation)
    }

    func endJournal() throws(StateError) { try DurableFile.remove(journalPath) }

    // MARK: confirmation

    func writePending(_ pending: PendingConfirmation) throws(StateError) {
        try DurableFile.write(pending.json.rendered() + "\n", to: pendingPath)
    }

    /// The pending confirmation, if any; `.damaged` when the record cannot be read.
    func pending() -> PendingConfirmation.Record {
        guard FileManager.default.fileExists(atPath: pendingPath) else { return .none }
        guard let text = try? String(contentsOfFile: pendingPath, encoding: .utf8), let json = try? JSON.parse(text),
            let pending = PendingConfirmation(json: json)
        else { return .damaged }
        return .waiting(pending)
    }

    func clearPending() throws(StateError) { try DurableFile.remove(pendingPath) }
}

/// An exclusive lock on STATE/lock (flock), so that two commands that change the kernel or the
/// state never interleave. Released when the process and every tool it started have exited,
/// whatever the reason: the descriptor is inherited by the iptables-restore children, so a
/// child still committing after its parent was killed keeps the next command waiting instead
/// of racing it.
public final class StateLock {
    private let descriptor: Int32

    /// Waits up to `timeout` seconds for the lock.
    public init(store: StateStore, timeout: Double) throws(StateError) {
        let path = store.directory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw StateError.system("cannot open \(path)") }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() >= deadline {
                close(fd)
                throw StateError(
                    message:
                        "another portcullis command holds \(path); gave up after \(Int(timeout)) s (see --lock-timeout)"
                )
            }
            usleep(50_000)
        }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
