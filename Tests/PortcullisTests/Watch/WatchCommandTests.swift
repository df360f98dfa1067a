import Foundation
import Testing

/// `portcullis watch` and `status` end to end: the executable runs inside the namespace of a
/// real dockerd 20.10 (never the machine's own), applies the policy there, syncs on a
/// container's start and on SIGHUP, keeps the running policy when a reloaded one has errors,
/// puts back a rule deleted by hand with no event, writes the status and metrics files, refuses
/// a second watcher on the same state directory, and on SIGTERM exits leaving the rules in place;
/// element changes no generation records yet are recorded by the next watcher if one is killed.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct WatchCommandTests {
    static let binary = CommandLineTests.binary

    @Test func withoutAWatcherStatusExits3() throws {
        let directory = NSTemporaryDirectory() + "pc-status-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let none = run([Self.binary, "status", "--state-dir", directory])
        #expect(none.status == 3 && none.stderr.contains("no watcher is running: no watcher has run with"))
        try "{}".write(toFile: directory + "/watch.json", atomically: true, encoding: .utf8)
        let bad = run([Self.binary, "status", "--state-dir", directory])
        #expect(bad.status == 2 && bad.stderr.contains("is not a portcullis.watch-status/1 status file"), "\(bad)")
        let unreachable = run([
            Self.binary, "watch", Repo.policies + "/web-stack.policy", "--docker-host", "ssh://example",
            "--state-dir", directory,
        ])
        #expect(unreachable.status == 2 && unreachable.stderr.contains("is neither unix:///PATH nor tcp://HOST:PORT"))
    }

    @Test(.timeLimit(.minutes(5)))
    func watchAppliesFollowsReloadsAndStopsLeavingTheRules() async throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        let state = daemon.directory + "/state"
        let metrics = daemon.directory + "/portcullis.prom"
        let log = daemon.directory + "/watch.log"
        // Bound to the daemon: the group is whatever runs with the label, nothing at first.
        let policy = daemon.directory + "/watch.policy"
        try "group webs { label role=web }\negress webs -> 198.18.63.0/24 port 443/tcp\n".write(
            toFile: policy, atomically: true, encoding: .utf8)
        let arguments = [
            policy, "--layout", "native", "--backend", "nftables", "--docker-host", "unix://" + daemon.socket,
            "--state-dir", state, "--metrics-file", metrics, "--drift-check", "1",
        ]
        let watch = try WatchProcess(daemon, arguments, log: log)
        func logged(_ text: String) -> Bool { watch.logged(text) }

        #expect(
            try await Self.eventually {
                logged(
                    "info portcullis.watch: [PortcullisWatch] sync 1: start: applied generation 1 (native, nftables)")
            }, "\(Repo.read(log))")
        #expect(logged("warning portcullis.watch: [PortcullisWatch] \(policy) does not set 'unknown-containers drop'"))
        #expect(logged("hint: add 'unknown-containers drop' to the policy's host block"), "and on stderr")
        let status = run([Self.binary, "status", "--state-dir", state])
        #expect(status.status == 0 && status.stderr.contains("a watcher is running"), "\(status)")
        #expect(status.stdout.contains("\"pid\": \(watch.pid)"), "\(status.stdout)")
        #expect(status.stdout.contains("\"connected\": true"))
        #expect(Repo.read(metrics).contains("portcullis_watch_syncs_total 1\n"), "\(Repo.read(metrics))")
        let table = daemon.namespace.exec(["nft", "list", "tables"]).stdout
        #expect(table.contains("portcullis"), "\(table)")

        let second = daemon.namespace.exec([Self.binary, "watch"] + arguments)
        #expect(
            second.status == 2 && second.stderr.contains("another 'portcullis watch' runs with the state directory"))

        try daemon.docker([["run", "-d", "--name", "web", "--label", "role=web", "tiny:1"]])
        #expect(
            try await Self.eventually { logged("sync 2: web started: applied generation 2 (native, nftables)") },
            "\(Repo.read(log))")
        #expect(daemon.namespace.exec(["nft", "list", "ruleset"]).stdout.contains("172.17.0.2"), "web's egress rules")
        kill(watch.pid, SIGHUP)
        #expect(try await Self.eventually { logged("sync 3: policy reload: no changes") }, "\(Repo.read(log))")
        #expect(try await Self.eventually { Repo.read(metrics).contains("portcullis_watch_managed_containers 1\n") })

        // An edit with an error: SIGHUP says where, once, and the running policy stays: a
        // container that starts next still gets its rules.
        try "group webs { label role=web }\negress webs -> 198.18.63.0/24 port 443/tcpp\n".write(
            toFile: policy, atomically: true, encoding: .utf8)
        kill(watch.pid, SIGHUP)
        #expect(
            try await Self.eventually {
                Repo.read(metrics).contains("portcullis_watch_reload_failures_total 1\n")
            }, "\(Repo.read(log))")
        #expect(
            logged(
                "error portcullis.watch: [PortcullisWatch] the policy was not reloaded; the syncs go on with the running policy:\n\(policy):2:40: error: unknown protocol 'tcpp'"
            ), "\(Repo.read(log))")
        #expect(Repo.read(state + "/watch.json").contains("\"last-reload-error\": \"\(policy):2:40: error"))
        // web2 joins a group web already has: only its elements, in one transaction, with no
        // generation until events are quiet (the delta path).
        try daemon.docker([["run", "-d", "--name", "web2", "--label", "role=web", "tiny:1"]])
        #expect(
            try await Self.eventually {
                logged(
                    "sync 4: web2 started: only set elements changed (native, nftables; the next full sync records them)"
                )
            }, "\(Repo.read(log))")
        #expect(daemon.namespace.exec(["nft", "list", "ruleset"]).stdout.contains("172.17.0.3"), "web2's rules")

        // A rule deleted by hand comes back with no event, within the drift check's second,
        // also while the element changes wait for their generation.
        let listing = { daemon.namespace.exec(["nft", "list", "table", "inet", "portcullis"]).stdout }
        let applied = listing()
        let handle = try #require(
            Self.ruleHandle(daemon.namespace.exec(["nft", "-a", "list", "table", "inet", "portcullis"]).stdout))
        let deleted = daemon.namespace.exec([
            "nft", "delete", "rule", "inet", "portcullis", handle.chain, "handle", handle.number,
        ])
        try #require(deleted.status == 0, "\(deleted.stderr)")
        #expect(listing() != applied)
        #expect(
            try await Self.eventually(seconds: 10) { logged("(repaired rules changed by someone else)") },
            "\(Repo.read(log))")
        #expect(listing() == applied)
        #expect(
            watch.text.contains(
                "warning portcullis.watch: [PortcullisWatch] rules changed by someone else: the ruleset changed since the watcher's last element changes (its generation counter moved); repairing"
            ), "\(Repo.read(log))")
        #expect(
            logged("sync 5: rules changed by someone else: applied generation 3 (native, nftables)"),
            "\(Repo.read(log))")
        #expect(try await Self.eventually { Repo.read(metrics).contains("portcullis_watch_drift_repairs_total 1\n") })

        kill(watch.pid, SIGTERM)
        #expect(try await Self.eventually { !watch.process.isRunning })
        #expect(watch.process.terminationStatus == 0)
        #expect(logged("notice portcullis.watch: [PortcullisWatch] stopping; the rules stay in place"))
        #expect(daemon.namespace.exec(["nft", "list", "tables"]).stdout == table, "the rules stay")
        #expect(daemon.namespace.exec(["nft", "list", "ruleset"]).stdout.contains("172.17.0.2"))
        let after = run([Self.binary, "status", "--state-dir", state])
        #expect(after.status == 3 && after.stderr.contains("no watcher is running: the watcher stopped at"), "\(after)")
        #expect(after.stdout.contains("\"syncs\": 5"))

        // Element changes, then the watcher killed with SIGKILL before a generation records
        // them: the state directory says so, and the next watcher's first sync replaces what
        // is there (the last generation no longer says what the kernel holds).
        try "group webs { label role=web }\negress webs -> 198.18.63.0/24 port 443/tcp\n".write(
            toFile: policy, atomically: true, encoding: .utf8)
        let again = try WatchProcess(daemon, arguments, log: daemon.directory + "/watch-2.log")
        #expect(try await Self.eventually { again.logged("sync 1: start: ") }, "\(again.text)")
        try daemon.docker([["run", "-d", "--name", "web3", "--label", "role=web", "tiny:1"]])
        #expect(
            try await Self.eventually { again.logged("sync 2: web3 started: only set elements changed") },
            "\(again.text)")
        #expect(FileManager.default.fileExists(atPath: state + "/unsettled"))
        again.kill9()
        let third = try WatchProcess(daemon, arguments, log: daemon.directory + "/watch-3.log")
        #expect(
            try await Self.eventually { third.logged("sync 1: start: applied generation 4 (native, nftables)") },
            "\(third.text)")
        #expect(!FileManager.default.fileExists(atPath: state + "/unsettled"))
        #expect(daemon.namespace.exec(["nft", "list", "ruleset"]).stdout.contains("172.17.0.4"), "web3's rules")
        third.kill9()
    }

    /// The chain and handle of the first rule in `nft -a list table` output.
    static func ruleHandle(_ listing: String) -> (chain: String, number: String)? {
        var chain: String?
        for line in listing.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if let match = line.wholeMatch(of: /chain (\S+) \{.*/) {
                chain = String(match.1)
            } else if let chain, !line.contains("{ # handle"), let match = line.firstMatch(of: /# handle (\d+)$/) {
                return (chain, String(match.1))
            }
        }
        return nil
    }

    static func eventually(seconds: Double = 30, _ condition: () -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return condition()
    }
}
