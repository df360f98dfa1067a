import Foundation

/// Facts about the process and the network namespace it runs in.
public enum Host {
    /// Whether the process holds CAP_NET_ADMIN (bit 12 of CapEff), without which the kernel
    /// neither validates nor changes rulesets.
    public static var hasNetAdmin: Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << 12) != 0
    }
}

/// The result of running a tool.
public struct ToolResult: Sendable {
    public let status: Int32
    public let output: String
    public let error: String
}

/// Runs the iptables tools (iptables-restore, iptables-save and their IPv6 twins).
///
/// Built on posix_spawn and waitpid rather than Foundation's Process, whose termination
/// monitor needs a loopback socket pair: in a network namespace whose `lo` is down (such as
/// `unshare -rn`) it never sees the child exit and waits forever.
public enum Tool {
    public static func run(_ arguments: [String], input: String? = nil) -> ToolResult {
        // A tool that exits before reading all its input must not kill us with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var stdinPipe: [Int32] = [0, 0]
        var stdoutPipe: [Int32] = [0, 0]
        var stderrPipe: [Int32] = [0, 0]
        guard pipe(&stdinPipe) == 0, pipe(&stdoutPipe) == 0, pipe(&stderrPipe) == 0 else {
            return ToolResult(
                status: 127, output: "", error: "cannot create pipes: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        for fd in stdinPipe + stdoutPipe + stderrPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = arguments.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        close(stdinPipe[0])
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard spawned == 0 else {
            for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] { close(fd) }
            return ToolResult(
                status: 127, output: "", error: "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        // Feed stdin and drain stdout and stderr together, so no pipe can fill up and stall.
        var pending = Array((input ?? "").utf8)[...]
        var output: [UInt8] = []
        var error: [UInt8] = []
        var writeFD: Int32 = stdinPipe[1]
        if pending.isEmpty {
            close(writeFD)
            writeFD = -1
        }
        var open: [Int32] = [stdoutPipe[0], stderrPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty || writeFD >= 0 {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if writeFD >= 0 { fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in fds where entry.revents != 0 {
                if entry.fd == writeFD {
                    let written = pending.withUnsafeBytes { write(writeFD, $0.baseAddress, min($0.count, 65536)) }
                    if written > 0 { pending = pending.dropFirst(written) }
                    if written <= 0 || pending.isEmpty {
                        close(writeFD)
                        writeFD = -1
                    }
                    continue
                }
                let count = read(entry.fd, &buffer, buffer.count)
                if count > 0 {
                    if entry.fd == stdoutPipe[0] { output += buffer[0..<count] } else { error += buffer[0..<count] }
                } else if count == 0 || errno != EINTR {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitCode: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return ToolResult(
            status: exitCode, output: String(decoding: output, as: UTF8.self),
            error: String(decoding: error, as: UTF8.self))
    }
}
