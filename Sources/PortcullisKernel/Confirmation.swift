import Foundation
import JanssonKit

/// An apply that must be confirmed by a deadline or is rolled back. The record is written
/// durably before the kernel is changed and a watchdog process of its own session is started
/// with it, so the deadline holds even when the apply process is killed or its terminal goes.
public struct PendingConfirmation: Sendable, Equatable {
    public let generation: Int
    /// Milliseconds since the epoch.
    public let deadline: Int64
    /// Names this wait alone: a generation number is reused after a rollback, a token is not.
    public let token: String
    /// The boot the ruleset was applied in: after a reboot the kernel no longer holds it.
    public let bootID: String
    /// The network namespace the ruleset was applied in (`device:inode` of its nsfs file).
    public let namespace: String

    public enum Record: Sendable, Equatable {
        case none
        case damaged
        case waiting(PendingConfirmation)
    }

    init(generation: Int, seconds: Int, now: Date = Date()) {
        self.generation = generation
        self.deadline = Int64((now.timeIntervalSince1970 + Double(seconds)) * 1000)
        self.token = (0..<4).map { _ in String(UInt32.random(in: .min ... .max), radix: 16) }.joined()
        self.bootID = Self.currentBootID
        self.namespace = Self.currentNamespace
    }

    init?(json: JSON) {
        guard let generation = json["generation"]?.integerValue,
            let deadline = json["deadline_ms"]?.integerValue, let token = json["token"]?.stringValue,
            let bootID = json["boot_id"]?.stringValue, let namespace = json["namespace"]?.stringValue
        else { return nil }
        self.generation = generation
        self.deadline = Int64(deadline)
        self.token = token
        self.bootID = bootID
        self.namespace = namespace
    }

    var json: JSON {
        .object([
            ("generation", .integer(generation)), ("deadline_ms", .integer(Int(deadline))), ("token", .string(token)),
            ("boot_id", .string(bootID)), ("namespace", .string(namespace)),
        ])
    }

    public var deadlineDate: Date { Date(timeIntervalSince1970: Double(deadline) / 1000) }

    func hasExpired(at now: Date) -> Bool { now >= deadlineDate }

    static let rebootReason = "it was written before the machine restarted, and the kernel no longer holds that ruleset"

    static var currentBootID: String {
        ((try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static var currentNamespace: String {
        var info = stat()
        guard stat("/proc/thread-self/ns/net", &info) == 0 else { return "unknown" }
        return "\(info.st_dev):\(info.st_ino)"
    }
}

/// Starts the process that rolls a pending generation back at its deadline. The command line
/// provides it (the watchdog is the same binary, run with a hidden subcommand).
public protocol ConfirmationWatchdog {
    func start(for pending: PendingConfirmation, store: StateStore) throws(StateError)
}

/// Runs `executable arguments` in a session of its own (no controlling terminal, so no SIGHUP
/// when the terminal goes), with stdin from /dev/null, stdout and stderr appended to `log`, and
/// no other descriptor inherited. Returns the process id; it is not waited for.
public func spawnDetached(_ executable: String, _ arguments: [String], log: String) throws(StateError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    closeInheritedDescriptors(&actions)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Default dispositions for the signals this process may ignore (SIGPIPE, see `Tool`), and
    // a new session.
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGPIPE, SIGHUP, SIGINT, SIGTERM] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(
        &attributes, Int16(spawnSetSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer {
        for pointer in argv { free(pointer) }
    }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    guard status == 0 else {
        throw StateError(message: "cannot start the confirmation watchdog: \(String(cString: strerror(status)))")
    }
    return pid
}

/// glibc's POSIX_SPAWN_SETSID, which its Swift module leaves out (it is behind _GNU_SOURCE).
private let spawnSetSID: Int32 = 0x80

/// Closes every descriptor above stderr in the child (glibc's
/// posix_spawn_file_actions_addclosefrom_np, looked up by name for the same reason), so that
/// the watchdog holds no pipe of the process that started it: a caller reading the apply's
/// output to its end must not wait for the watchdog too.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        return
    }
    for fd in 3..<Int32(1024) where fcntl(fd, F_GETFD) >= 0 { posix_spawn_file_actions_addclose(&actions, fd) }
}
