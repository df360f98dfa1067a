import Foundation
import JanssonKit

/// What one apply changed, kept so that it can be rolled back: the files that were applied,
/// a snapshot of what they replaced, and the listing of the owned tables right after.
public struct Generation: Sendable {
    public let number: Int
    public let backend: String
    public let layout: String
    public let policy: String
    public let appliedAt: String
    /// Rendered files by extension (`iptables`, `ip6tables`, `nft`, `nft.json`).
    public let applied: [String: String]
    /// What the owned tables held before this generation, by snapshot file name.
    public let before: [String: String]
    /// The owned tables as listed right after the apply without set elements (nft backends),
    /// to see drift in their structure; elements are compared with `applied["nft.json"]`.
    public let listingAfter: String
    /// The kernel's nftables ruleset generation right after the apply: while it has not moved,
    /// nothing can have changed (see `RulesetGeneration`).
    public let kernelGeneration: UInt32?
}

public struct StateError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The state directory: numbered generations (the last few are kept), the lock that
/// serialises apply and rollback, and the marker of an apply waiting for confirmation.
///
///     STATE/lock
///     STATE/pending                     generation awaiting `portcullis confirm`
///     STATE/generations/000007/meta.json
///     STATE/generations/000007/applied.nft ...   what was applied
///     STATE/generations/000007/before.nft.json   what it replaced (iptables: before.iptables)
public struct StateStore: Sendable {
    public let directory: String
    public static let generationsKept = 5

    public init(directory: String) { self.directory = directory }

    var generationsDirectory: String { directory + "/generations" }
    var pendingPath: String { directory + "/pending" }

    public func prepare() throws(StateError) {
        do {
            try FileManager.default.createDirectory(atPath: generationsDirectory, withIntermediateDirectories: true)
        } catch {
            throw StateError(message: "cannot create the state directory \(directory): \(error.localizedDescription)")
        }
    }

    public func generationNumbers() -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: generationsDirectory)) ?? []).compactMap { Int($0) }
            .sorted()
    }

    public func latest() -> Generation? { generationNumbers().last.flatMap { load($0) } }

    public func load(_ number: Int) -> Generation? {
        let folder = generationsDirectory + "/" + String(format: "%06d", number)
        guard let metaText = try? String(contentsOfFile: folder + "/meta.json", encoding: .utf8),
            let meta = try? JSON.parse(metaText)
        else { return nil }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        func contents(_ prefix: String) -> [String: String] {
            Dictionary(
                uniqueKeysWithValues: files.filter { $0.hasPrefix(prefix) }.compactMap { name in
                    (try? String(contentsOfFile: folder + "/" + name, encoding: .utf8)).map {
                        (String(name.dropFirst(prefix.count)), $0)
                    }
                })
        }
        return Generation(
            number: number, backend: meta["backend"]?.stringValue ?? "", layout: meta["layout"]?.stringValue ?? "",
            policy: meta["policy"]?.stringValue ?? "", appliedAt: meta["applied_at"]?.stringValue ?? "",
            applied: contents("applied."), before: contents("before."),
            listingAfter: (try? String(contentsOfFile: folder + "/listing-after.nft", encoding: .utf8)) ?? "",
            kernelGeneration: meta["kernel_generation"]?.integerValue.map { UInt32(truncatingIfNeeded: $0) })
    }

    /// Writes a new generation and drops the oldest beyond `generationsKept`.
    @discardableResult
    public func save(
        backend: String, layout: String, policy: String, applied: [String: String], before: [String: String],
        listingAfter: String, kernelGeneration: UInt32? = nil
    ) throws(StateError) -> Int {
        let number = (generationNumbers().last ?? 0) + 1
        let folder = generationsDirectory + "/" + String(format: "%06d", number)
        let meta = JSON.object(
            [
                ("generation", .integer(number)), ("backend", .string(backend)), ("layout", .string(layout)),
                ("policy", .string(policy)), ("applied_at", .string(ISO8601DateFormatter().string(from: Date()))),
            ] + (kernelGeneration.map { [("kernel_generation", JSON.integer(Int($0)))] } ?? []))
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try (meta.rendered() + "\n").write(toFile: folder + "/meta.json", atomically: true, encoding: .utf8)
            for (ext, text) in applied {
                try text.write(toFile: folder + "/applied." + ext, atomically: true, encoding: .utf8)
            }
            for (ext, text) in before {
                try text.write(toFile: folder + "/before." + ext, atomically: true, encoding: .utf8)
            }
            try listingAfter.write(toFile: folder + "/listing-after.nft", atomically: true, encoding: .utf8)
        } catch {
            throw StateError(
                message: "cannot write generation \(number) in \(directory): \(error.localizedDescription)")
        }
        for old in generationNumbers().dropLast(Self.generationsKept) {
            try? FileManager.default.removeItem(atPath: generationsDirectory + "/" + String(format: "%06d", old))
        }
        return number
    }

    /// Forgets a generation (after it was rolled back).
    public func discard(_ number: Int) {
        try? FileManager.default.removeItem(atPath: generationsDirectory + "/" + String(format: "%06d", number))
    }

    // MARK: confirmation

    public func markPending(_ number: Int) throws(StateError) {
        do {
            try "\(number)\n".write(toFile: pendingPath, atomically: true, encoding: .utf8)
        } catch {
            throw StateError(message: "cannot write \(pendingPath): \(error.localizedDescription)")
        }
    }

    public var pendingGeneration: Int? {
        (try? String(contentsOfFile: pendingPath, encoding: .utf8)).flatMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// `portcullis confirm`: the waiting apply sees the marker gone and keeps its ruleset.
    public func confirmPending() -> Int? {
        guard let number = pendingGeneration else { return nil }
        try? FileManager.default.removeItem(atPath: pendingPath)
        return number
    }

    public func clearPending() { try? FileManager.default.removeItem(atPath: pendingPath) }
}

/// An exclusive lock on STATE/lock (flock), so that two applies or rollbacks never interleave.
/// Released when the process exits, whatever the reason.
public final class StateLock {
    private let descriptor: Int32

    /// Waits up to `timeout` seconds for the lock.
    public init(store: StateStore, timeout: Double) throws(StateError) {
        let path = store.directory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StateError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() >= deadline {
                close(fd)
                throw StateError(
                    message:
                        "another portcullis apply or rollback holds \(path); gave up after \(Int(timeout)) s (see --lock-timeout)"
                )
            }
            usleep(100_000)
        }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
