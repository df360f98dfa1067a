import Foundation
import NftablesKit
import PortcullisCompiler
import Testing

/// Paths inside the repository, found from this file's location.
enum Repo {
    /// The nearest folder above this file that holds Package.swift, wherever in the tests the
    /// file stands.
    static let root: String = {
        var folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: folder.appendingPathComponent("Package.swift").path),
            folder.path != "/"
        {
            folder.deleteLastPathComponent()
        }
        return folder.path
    }()
    static let fixtures = root + "/Tests/PortcullisTests/Fixtures"
    static let policies = root + "/policies"
    static let golden = root + "/golden"

    /// The shipped policies (top level of policies/; fragments they include live in subfolders).
    static var shippedPolicies: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: policies)) ?? []).filter { $0.hasSuffix(".policy") }
            .sorted()
            .map { policies + "/" + $0 }
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program and waits; stdin is the given text.
@discardableResult
func run(_ arguments: [String], input: String? = nil) -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let stdout = Pipe()
    let stderr = Pipe()
    let stdin = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = stdin
    do { try process.run() } catch { return CommandResult(status: -1, stdout: "", stderr: "\(error)") }
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    // Read both pipes before waiting so a large output cannot block the child.
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
        stderr: String(decoding: err, as: UTF8.self))
}

/// Records what a run writes to stdout and stderr.
final class Transcript: Console, @unchecked Sendable {
    private var written = ""
    private var notes = ""
    private let lock = NSLock()

    func output(_ text: String) { lock.withLock { written += text } }
    func note(_ line: String) { lock.withLock { notes += line + "\n" } }

    var stdout: String { lock.withLock { written } }
    var stderr: String { lock.withLock { notes } }
}

/// One call into the application layer, in-process, as a command makes it: what it writes,
/// and the exit code (1 for findings; 2 for a failure, whose report goes to stderr).
func inProcess(_ body: (Application) throws -> RunStatus) -> CommandResult {
    let transcript = Transcript()
    var status: Int32
    do {
        switch try body(Application(console: transcript)) {
        case .clean: status = 0
        case .findings: status = 1
        case .failed: status = 2
        }
    } catch let failure as CompileFailure {
        transcript.note(failure.report)
        status = 2
    } catch {
        transcript.note("error: \(error)")
        status = 2
    }
    return CommandResult(status: status, stdout: transcript.stdout, stderr: transcript.stderr)
}

/// `portcullis compile POLICY` in-process: the ruleset as compile prints it.
func compiledRuleset(_ policy: String, layout: String? = nil, backend: String? = nil) -> CommandResult {
    switch Compiler().compile(policy, layout: layout, backend: backend) {
    case .success(let files): CommandResult(status: 0, stdout: CaptureFormat.joined(files), stderr: "")
    case .failure(let failure): CommandResult(status: 2, stdout: "", stderr: failure.report)
    }
}

/// Whether tests that need the kernel run: as root they do; in CI they must (and fail when not
/// root); elsewhere they are skipped with the reason printed by Swift Testing.
enum Kernel {
    static let isRoot = geteuid() == 0
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let enabled = isRoot || inCI
    static let reason: Comment = "needs root to create network namespaces"
}

/// A network namespace created for one test and deleted when it ends. Everything that touches
/// the kernel happens inside one of these, never in the machine's own namespace.
final class TestNamespace {
    let name: String
    private static let counter = Counter()

    init() throws {
        name = "pc-test-\(getpid())-\(TestNamespace.counter.next())"
        let result = run(["ip", "netns", "add", name])
        guard result.status == 0 else { throw NamespaceError(message: "ip netns add \(name): \(result.stderr)") }
        run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
    }

    deinit { run(["ip", "netns", "delete", name]) }

    /// Runs a command inside the namespace.
    @discardableResult
    func exec(_ arguments: [String], input: String? = nil) -> CommandResult {
        run(["ip", "netns", "exec", name] + arguments, input: input)
    }

    /// Runs `body` on a thread of its own that has joined the namespace (a network namespace
    /// belongs to a thread, so the rest of the process stays where it is). The thread checks
    /// that it really is in the namespace before running anything.
    func inside<T: Sendable>(_ body: @escaping @Sendable () -> T) throws -> T {
        let result = ResultBox<T>()
        let path = "/run/netns/\(name)"
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { return }
            defer { close(fd) }
            guard TestNamespace.setns(fd) == 0, TestNamespace.sameFile("/proc/thread-self/ns/net", path) else { return }
            result.set(body())
        }
        thread.start()
        done.wait()
        guard let value = result.get() else { throw NamespaceError(message: "could not enter namespace \(name)") }
        return value
    }

    /// glibc's setns(2) for network namespaces; Glibc's Swift module does not export it (it is
    /// behind _GNU_SOURCE), so it is looked up by name.
    static func setns(_ fd: Int32) -> Int32 {
        typealias SetNS = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return -1 }
        let cloneNewNet: Int32 = 0x4000_0000
        return unsafeBitCast(symbol, to: SetNS.self)(fd, cloneNewNet)
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat()
        var sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev
    }

    /// `iptables-save` in the namespace as iptables-restore input: `#` lines dropped, counters
    /// zeroed, so it compares with what Portcullis renders.
    func savedIptables(_ save: String = "iptables-save") -> String {
        exec([save]).stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("#") }
            .map { $0.replacing(#/\[\d+:\d+\]$/#, with: "[0:0]") }
            .joined(separator: "\n")
    }

    /// `ip6tables-save` in the namespace, in the same form.
    func savedIp6tables() -> String { savedIptables("ip6tables-save") }

    /// A libnftables dry run of `text` (native syntax or JSON) inside the namespace.
    func nftDryRun(_ text: String) throws -> NftResult {
        try inside {
            guard let context = try? NftContext(dryRun: true) else {
                return NftResult(succeeded: false, output: "", error: "no libnftables context")
            }
            return context.run(text)
        }
    }

    /// Applies `text` with libnftables inside the namespace and returns `list ruleset`.
    func nftApplyAndList(_ text: String) throws -> (NftResult, String) {
        try inside {
            guard let context = try? NftContext() else {
                return (NftResult(succeeded: false, output: "", error: "no libnftables context"), "")
            }
            let applied = context.run(text)
            context.jsonOutput = false
            let listing = context.run("list ruleset").output
            return (applied, listing)
        }
    }
}

struct NamespaceError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}

final class ResultBox<T>: @unchecked Sendable {
    private var value: T?
    private let lock = NSLock()
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T? { lock.withLock { value } }
}

/// A small deterministic generator (SplitMix64) so failures replay.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SeededGenerator {
    /// One of `items`, nil for none (the draw `next() % count`, as replays recorded it).
    mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[Int(next() % UInt64(items.count))] }
}
