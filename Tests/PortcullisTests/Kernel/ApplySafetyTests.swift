import Foundation
import Testing

/// The promises of `apply` on a live host, each proved by injecting the fault: rollback of a
/// first apply on every real Docker capture, kill -9 at random points, signals and a dropped
/// terminal during `--confirm`, a confirmation racing its deadline, a full or read-only state
/// directory, and damaged state files. Every fault is seeded (PORTCULLIS_FAULT_SEED replays a
/// run) and happens in namespaces the test creates.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct ApplySafetyTests {
    static let binary = CommandLineTests.binary
    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["PORTCULLIS_FAULT_SEED"].flatMap { UInt64($0) } ?? 20_261_206

    /// A scratch folder removed at the end of the test.
    final class Scratch {
        let path = NSTemporaryDirectory() + "portcullis-safety-\(getpid())-\(UUID().uuidString.prefix(8))"
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        var state: String { path + "/state" }

        func write(_ name: String, _ text: String) throws -> String {
            try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
            return path + "/" + name
        }
    }

    /// Everything a rollback must put back: the iptables tables (counters aside), which tables
    /// exist (a table created and left empty shows there), and every other table's content.
    /// iptables-nft's own tables are compared through iptables-save alone: `nft list` shows
    /// their xtables targets differently depending on how they were loaded. Tables are sorted:
    /// the kernel lists them in the order they were created, which decides nothing.
    func hostState(_ namespace: TestNamespace) -> String {
        let iptablesTables = #/^(ip|ip6) (filter|nat|raw|mangle|security) \{/#
        let tables = namespace.exec(["nft", "list", "ruleset"]).stdout.components(separatedBy: "\ntable ").map {
            ($0.hasPrefix("table ") ? String($0.dropFirst(6)) : $0).trimmingCharacters(in: .newlines)
        }
        return namespace.savedIptables() + namespace.savedIp6tables()
            + tables.map { $0.firstMatch(of: iptablesTables) != nil ? String($0.prefix { $0 != "\n" }) : $0 }
            .sorted().joined(separator: "\n")
    }

    /// The lines of `a` and `b` that the other lacks, for failure messages.
    func difference(_ a: String, _ b: String) -> String {
        let (linesA, linesB) = (a.split(separator: "\n"), b.split(separator: "\n"))
        return
            "only before: \(linesA.filter { !linesB.contains($0) }.prefix(8)) only after: \(linesB.filter { !linesA.contains($0) }.prefix(8))"
    }

    func portcullis(_ namespace: TestNamespace, _ arguments: [String]) -> CommandResult {
        namespace.exec([Self.binary] + arguments)
    }

    /// A docker-20.10 policy with `count` containers on one bridge, each publishing a port.
    static func bigPolicy(_ count: Int) -> String {
        var text =
            "host {\n    layout docker-20.10\n}\n\nnetwork big {\n    bridge br-big\n    subnet 198.18.0.0/16\n}\n"
        for index in 0..<count {
            text += """

                container c\(index) {
                    attach big 198.18.\(index / 250 + 1).\(index % 250 + 2)
                    publish \(10000 + index) -> 80/tcp
                }

                """
        }
        return text
    }

    // MARK: rollback restores exactly

    /// Rollback of a first apply on a host Docker made: every real Docker 20.10 capture is loaded,
    /// a different policy applied over it (iptables, and the native nftables table beside it),
    /// and rolled back; the host must be exactly as loaded.
    @Test(arguments: ["iptables", "native"])
    func rollbackOfAFirstApplyRestoresEveryDockerCapture(_ target: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let folder = Repo.fixtures + "/docker-20.10"
        let captures = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".rules") }
            .sorted()
        try #require(captures.count >= 17)
        for capture in captures {
            let namespace = try TestNamespace()
            let scratch = try Scratch()
            // IPv6 captures hold ip6tables-save after a `#### ip6tables` line.
            let parts = Repo.read(folder + "/" + capture).components(separatedBy: "#### ip6tables\n")
            for (tool, text) in zip(["iptables-restore", "ip6tables-restore"], parts) {
                let load = namespace.exec([tool], input: text)
                try #require(load.status == 0, "\(capture): \(load.stderr)")
            }
            let loaded = hostState(namespace)
            let layout = target == "native" ? ["--layout", "native", "--backend", "nftables"] : []
            let apply = portcullis(
                namespace,
                ["apply", Repo.policies + "/web-stack.policy", "--state-dir", scratch.state, "--prune"] + layout)
            #expect(apply.status == 0, "\(capture): \(apply.stderr)")
            #expect(hostState(namespace) != loaded, "\(capture): the apply changed nothing")
            let back = portcullis(namespace, ["rollback", "--state-dir", scratch.state])
            #expect(back.status == 0, "\(capture): \(back.stderr)")
            let after = hostState(namespace)
            #expect(after == loaded, "\(capture): not the host that was loaded: \(difference(loaded, after))")
        }
    }

    // MARK: kill -9

    /// kill -9 of `apply` at random points of a 2,000-container apply: after the next command
    /// settles, the kernel holds the old ruleset or the new one, never a mix, and apply and
    /// rollback work again.
    @Test(arguments: ["iptables", "native"])
    func killDuringApplyLeavesTheOldOrTheNewRuleset(_ target: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        var random = SeededGenerator(seed: Self.seed &+ (target == "native" ? 1 : 0))
        let scratch = try Scratch()
        let big = try scratch.write("big.policy", Self.bigPolicy(2000))
        let layout = target == "native" ? ["--layout", "native", "--backend", "nftables"] : []
        let small = Repo.policies + "/icc-off.policy"
        // How long a whole apply takes here, so that kills fall before, inside and after it.
        let timing = try TestNamespace()
        let started = Date()
        let full = portcullis(timing, ["apply", big, "--state-dir", scratch.path + "/timing"] + layout)
        try #require(full.status == 0, "\(full.stderr)")
        let fullSeconds = Date().timeIntervalSince(started)
        let newState = hostState(timing)
        print("kill -9 during apply (\(target)): seed \(Self.seed), a full apply takes \(fullSeconds) s")

        for round in 0..<6 {
            let namespace = try TestNamespace()
            let state = scratch.path + "/state-\(round)"
            try #require(portcullis(namespace, ["apply", small, "--state-dir", state] + layout).status == 0)
            let oldState = hostState(namespace)
            let delay = Double.random(in: 0...(fullSeconds * 1.2), using: &random)
            let running = try BackgroundCommand(
                ["ip", "netns", "exec", namespace.name, Self.binary, "apply", big, "--state-dir", state, "--prune"]
                    + layout)
            usleep(useconds_t(delay * 1_000_000))
            kill(running.process.processIdentifier, SIGKILL)
            _ = running.finish()
            // The next command settles whatever the kill left.
            let plan = portcullis(namespace, ["plan", big, "--state-dir", state, "--prune"] + layout)
            #expect(plan.status != 2, "round \(round) (kill after \(delay) s): \(plan.stderr)")
            let settled = hostState(namespace)
            #expect(
                settled == oldState || settled == newState,
                "round \(round): kill after \(delay) s left neither ruleset (seed \(Self.seed))")
            let again = portcullis(namespace, ["apply", big, "--state-dir", state, "--prune"] + layout)
            #expect(again.status == 0, "round \(round): \(again.stderr)")
            #expect(hostState(namespace) == newState)
            let back = portcullis(namespace, ["rollback", "--state-dir", state])
            #expect(back.status == 0, "round \(round): \(back.stderr)")
            #expect(hostState(namespace) == oldState, "round \(round): rollback did not restore the old ruleset")
        }
    }

    // MARK: --confirm

    /// The confirmation deadline outlives the apply: SIGHUP (a dropped ssh session), SIGINT,
    /// SIGTERM or SIGKILL during the window still ends with the previous ruleset back by the
    /// deadline, no record left, and nothing to confirm afterwards.
    @Test(arguments: [SIGHUP, SIGINT, SIGTERM, SIGKILL])
    func confirmationDeadlineSurvivesTheApplyProcess(_ signal: Int32) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let scratch = try Scratch()
        try #require(
            portcullis(namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", scratch.state]).status
                == 0)
        let before = hostState(namespace)
        // As from a shell: the test runner's ignored or blocked signals would be inherited, so
        // the apply gets the default dispositions first (the process id stays the same).
        let waiting = try BackgroundCommand([
            "python3", "-c",
            "import os, signal, sys; [signal.signal(s, signal.SIG_DFL) for s in (1, 2, 15)]; "
                + "signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])",
            "ip", "netns", "exec", namespace.name, Self.binary, "apply", Repo.policies + "/web-stack.policy",
            "--state-dir", scratch.state, "--confirm", "6", "--prune",
        ])
        // Applied and waiting: the generation is complete and the journal gone (the pending
        // record is written before the kernel changes, so it alone says too little).
        do {
            try waitFor {
                FileManager.default.fileExists(atPath: scratch.state + "/generations/000002/after.iptables")
                    && !FileManager.default.fileExists(atPath: scratch.state + "/journal.json")
            }
        } catch {
            kill(waiting.process.processIdentifier, SIGKILL)
            Issue.record("the apply never got to wait for confirmation: \(waiting.finish().1)")
            return
        }
        usleep(100_000)
        kill(waiting.process.processIdentifier, signal)
        let (_, output) = waiting.finish()
        #expect(output.contains("applied generation 2"), "the outcome line was lost: \(output)")
        #expect(hostState(namespace) != before, "the new ruleset is in place until the deadline: \(output)")
        try waitFor(seconds: 15) { !FileManager.default.fileExists(atPath: scratch.state + "/pending.json") }
        try waitFor(seconds: 5) { hostState(namespace) == before }
        let log = Repo.read(scratch.state + "/watchdog.log")
        #expect(log.contains("generation 2 was not confirmed by its deadline and was rolled back"), "\(log)")
        let late = portcullis(namespace, ["confirm", "--state-dir", scratch.state])
        #expect(late.status == 1 && late.stderr.contains("nothing is waiting for confirmation"))
        #expect(hostState(namespace) == before)
    }

    /// `confirm` sent around the deadline either confirms (and the ruleset stays) or finds it
    /// too late (and the ruleset is back), never says one while the other happens.
    @Test func confirmationRacingTheDeadlineIsOneOrTheOther() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        var random = SeededGenerator(seed: Self.seed &+ 2)
        let namespace = try TestNamespace()
        let scratch = try Scratch()
        try #require(
            portcullis(namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", scratch.state]).status
                == 0)
        let old = hostState(namespace)
        var outcomes: Set<Int32> = []
        for round in 0..<8 {
            let waiting = try BackgroundCommand([
                "ip", "netns", "exec", namespace.name, Self.binary, "apply", Repo.policies + "/web-stack.policy",
                "--state-dir", scratch.state, "--confirm", "1", "--prune",
            ])
            try waitFor { FileManager.default.fileExists(atPath: scratch.state + "/pending.json") }
            usleep(useconds_t(Double.random(in: 0.85...1.1, using: &random) * 1_000_000))
            let confirm = portcullis(namespace, ["confirm", "--state-dir", scratch.state])
            let (status, output) = waiting.finish()
            outcomes.insert(confirm.status)
            if confirm.status == 0 {
                #expect(status == 0 && output.contains("confirmed generation 2"), "round \(round): \(output)")
                #expect(hostState(namespace) != old)
                let back = portcullis(namespace, ["rollback", "--state-dir", scratch.state])
                try #require(back.status == 0, "\(back.stderr)")
            } else {
                #expect(confirm.status == 1, "round \(round): \(confirm.stderr)")
                #expect(status == 1 && output.contains("was rolled back"), "round \(round): \(output)")
            }
            #expect(hostState(namespace) == old, "round \(round)")
        }
        print("confirm racing the deadline: outcomes \(outcomes.sorted()) (seed \(Self.seed))")
    }

    // MARK: the state directory

    /// A full or read-only state directory: apply exits 2 and the kernel is unchanged, because
    /// the generation is recorded before the kernel is touched.
    @Test(arguments: ["full", "read-only"])
    func unwritableStateChangesNothing(_ fault: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let scratch = try Scratch()
        let state = scratch.state
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        // In a mount namespace of its own: the tmpfs is seen by this command alone.
        let setUp =
            fault == "full"
            ? "mount -t tmpfs -o size=64k tmpfs \(state) && (dd if=/dev/zero of=\(state)/filler bs=1k count=64 2>/dev/null; true)"
            : "mount -t tmpfs -o size=1m tmpfs \(state) && mkdir \(state)/generations && mount -o remount,ro \(state)"
        func applyWithFault(_ policy: String) -> CommandResult {
            namespace.exec([
                "unshare", "-m", "--propagation", "private", "sh", "-c",
                "\(setUp) && exec \(Self.binary) apply \(policy) --state-dir \(state) --prune",
            ])
        }
        let before = hostState(namespace)
        let result = applyWithFault(Repo.policies + "/web-stack.policy")
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains(fault == "full" ? "No space left on device" : "Read-only file system"))
        #expect(hostState(namespace) == before)
    }

    /// Damaged generation files are reported, never applied: rollback and apply exit 2 naming
    /// the file, and the kernel is unchanged.
    @Test(arguments: ["truncated", "missing", "garbage meta", "huge number", "empty folder", "garbage journal"])
    func damagedStateIsReportedNeverApplied(_ damage: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let scratch = try Scratch()
        let state = scratch.state
        for policy in ["icc-off", "web-stack"] {
            let applied = portcullis(
                namespace, ["apply", Repo.policies + "/\(policy).policy", "--state-dir", state, "--prune"])
            try #require(applied.status == 0, "\(applied.stderr)")
        }
        let second = state + "/generations/000002"
        switch damage {
        case "truncated":
            let text = Repo.read(second + "/before.iptables")
            try String(text.prefix(text.count / 2)).write(
                toFile: second + "/before.iptables", atomically: true, encoding: .utf8)
        case "missing":
            try FileManager.default.removeItem(atPath: second + "/before.iptables")
        case "garbage meta":
            try "{\"generation\": 2, \"files\": [".write(
                toFile: second + "/meta.json", atomically: true, encoding: .utf8)
        case "huge number":
            let meta = Repo.read(second + "/meta.json").replacingOccurrences(
                of: "\"generation\": 2", with: "\"generation\": 1e300")
            try meta.write(toFile: second + "/meta.json", atomically: true, encoding: .utf8)
        case "empty folder":
            try FileManager.default.createDirectory(
                atPath: state + "/generations/000003", withIntermediateDirectories: true)
        default:
            try "{\"operation\": \"ap".write(toFile: state + "/journal.json", atomically: true, encoding: .utf8)
        }
        let before = hostState(namespace)
        let rollback = portcullis(namespace, ["rollback", "--state-dir", state])
        #expect(rollback.status == 2, "\(rollback.stdout)\(rollback.stderr)")
        #expect(rollback.stderr.contains(damage == "garbage journal" ? "journal.json is damaged" : "is damaged"))
        let apply = portcullis(
            namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", state, "--prune"])
        #expect(apply.status == 2, "\(apply.stdout)\(apply.stderr)")
        #expect(hostState(namespace) == before)
    }

    /// A journal left by a run killed between changing the kernel and recording the change:
    /// the next command undoes that generation, so the kernel holds what it held before it.
    @Test(arguments: ["iptables", "native"])
    func anInterruptedApplyIsUndoneByTheNextCommand(_ target: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let scratch = try Scratch()
        let layout = target == "native" ? ["--layout", "native", "--backend", "nftables"] : []
        try #require(
            portcullis(namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", scratch.state] + layout)
                .status == 0)
        let old = hostState(namespace)
        try #require(
            portcullis(
                namespace,
                ["apply", Repo.policies + "/web-stack.policy", "--state-dir", scratch.state, "--prune"] + layout
            ).status == 0)
        // As if the process died before it removed the journal.
        try "{\"operation\": \"apply\", \"generation\": 2}\n".write(
            toFile: scratch.state + "/journal.json", atomically: true, encoding: .utf8)
        let plan = portcullis(
            namespace, ["plan", Repo.policies + "/icc-off.policy", "--state-dir", scratch.state] + layout)
        #expect(plan.status == 0, "\(plan.stdout)\(plan.stderr)")
        #expect(plan.stderr.contains("an apply of generation 2 was interrupted; it was undone"))
        #expect(hostState(namespace) == old)
        #expect(!FileManager.default.fileExists(atPath: scratch.state + "/generations/000002"))
    }
}
