import Foundation
import Logging
import PortcullisIR
import PortcullisKernel
import PortcullisLayouts
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax
import Testing

/// `portcullis apply`, `rollback` and `confirm` against the kernel, each test in namespaces of
/// its own: ownership (foreign rules and tables survive), idempotence, atomic failure,
/// serialised concurrent runs, and the confirm timer.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct KernelApplyTests {
    static let binary = CommandLineTests.binary

    /// A scratch state directory, removed at the end of the test.
    final class StateDirectory {
        let path = NSTemporaryDirectory() + "portcullis-state-\(getpid())-\(UUID().uuidString.prefix(8))"
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    func portcullis(_ namespace: TestNamespace, _ arguments: [String]) -> CommandResult {
        namespace.exec([Self.binary] + arguments)
    }

    /// The namespace's iptables tables without comment lines and counters.
    func iptablesListing(_ namespace: TestNamespace) -> String { namespace.savedIptables() }

    func nftListing(_ namespace: TestNamespace) -> String { namespace.exec(["nft", "list", "ruleset"]).stdout }

    /// Rules of other tools: an INPUT rule, a chain of their own jumped to from FORWARD, and
    /// (for nft) a table in another family.
    func addForeignRules(_ namespace: TestNamespace) throws {
        for command in [
            ["iptables", "-A", "INPUT", "-s", "198.18.9.9", "-j", "DROP"], ["iptables", "-N", "UFW-LIKE"],
            ["iptables", "-A", "UFW-LIKE", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
            ["iptables", "-A", "FORWARD", "-j", "UFW-LIKE"], ["nft", "add", "table", "inet", "foreign"],
            ["nft", "add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 10; }"],
            ["nft", "add", "rule", "inet", "foreign", "input", "tcp", "dport", "22", "accept"],
        ] {
            let result = namespace.exec(command)
            try #require(result.status == 0, "\(command): \(result.stderr)")
        }
    }

    /// A namespace with no iptables tables at all: rolling back the first generation removes the
    /// tables it created, so the namespace is as it was (found first by `KernelDifferentialTests`,
    /// whose nftables target dropped everything behind a FORWARD left at DROP).
    @Test func rollingBackTheFirstGenerationRemovesTheTablesItCreated() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        let pristine = nftListing(namespace)
        let apply = portcullis(namespace, ["apply", Repo.policies + "/web-stack.policy", "--state-dir", state.path])
        try #require(apply.status == 0, "\(apply.stderr)")
        #expect(iptablesListing(namespace).contains(":FORWARD DROP"))
        let back = portcullis(namespace, ["rollback", "--state-dir", state.path])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(nftListing(namespace) == pristine)
        // So an nftables apply afterwards finds no table in its way.
        let nft = portcullis(
            namespace,
            ["apply", Repo.policies + "/web-stack.policy", "--backend", "nftables", "--state-dir", state.path])
        #expect(nft.status == 0, "\(nft.stderr)")
    }

    @Test func iptablesApplyKeepsForeignRulesAndRollsBackExactly() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        try addForeignRules(namespace)
        let pristineFilter = iptablesListing(namespace)
        let pristineForeignTable = namespace.exec(["nft", "list", "table", "inet", "foreign"]).stdout

        let applied = portcullis(namespace, ["apply", Repo.policies + "/web-stack.policy", "--state-dir", state.path])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.hasPrefix("applied generation 1 (docker-20.10, iptables): replaced the ruleset ("))
        let afterFirst = iptablesListing(namespace)
        for foreign in [
            "-A INPUT -s 198.18.9.9/32 -j DROP", ":UFW-LIKE - [0:0]", "-A FORWARD -j UFW-LIKE",
            "-A UFW-LIKE -p tcp -m tcp --dport 22 -j ACCEPT",
        ] {
            #expect(afterFirst.contains(foreign + "\n"), "lost: \(foreign)")
        }
        // Ours first in FORWARD, as Docker inserts its jumps at the top.
        let forward = afterFirst.split(separator: "\n").filter { $0.hasPrefix("-A FORWARD ") }
        #expect(forward.first == "-A FORWARD -j DOCKER-USER" && forward.last == "-A FORWARD -j UFW-LIKE")
        // Our rules are exactly the golden file's, in order.
        let golden = Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables").split(separator: "\n")
            .filter { $0.hasPrefix("-A ") }
        #expect(afterFirst.split(separator: "\n").filter { $0.hasPrefix("-A ") && golden.contains($0) } == golden)

        let again = portcullis(namespace, ["apply", Repo.policies + "/web-stack.policy", "--state-dir", state.path])
        #expect(again.status == 0 && again.stdout == "no changes: generation 1 is already applied\n")
        #expect(iptablesListing(namespace) == afterFirst)

        let second = portcullis(
            namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", state.path, "--prune"])
        #expect(second.status == 0 && second.stdout.hasPrefix("applied generation 2"))
        #expect(!iptablesListing(namespace).contains("br-front"))

        let back = portcullis(namespace, ["rollback", "--state-dir", state.path])
        #expect(back.status == 0 && back.stdout == "rolled back generation 2; generation 1 is current\n")
        #expect(iptablesListing(namespace) == afterFirst)

        let first = portcullis(namespace, ["rollback", "--state-dir", state.path])
        #expect(
            first.stdout
                == "rolled back generation 1; the kernel holds what it held before Portcullis' first apply\n")
        // Exactly as before the first apply: the filter table as it was, no nat table.
        #expect(iptablesListing(namespace) == pristineFilter)
        #expect(namespace.exec(["nft", "list", "table", "inet", "foreign"]).stdout == pristineForeignTable)
        let none = portcullis(namespace, ["rollback", "--state-dir", state.path])
        #expect(none.status == 1 && none.stderr.contains("nothing to roll back"))
    }

    @Test(arguments: ["nftables", "nftables-json"])
    func nftApplyOwnsItsTablesOnly(_ backend: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        _ = namespace.exec(["nft", "add", "table", "inet", "foreign"])
        _ = namespace.exec([
            "nft", "add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 10; }",
        ])
        _ = namespace.exec(["nft", "add", "rule", "inet", "foreign", "input", "tcp", "dport", "22", "accept"])
        let pristine = nftListing(namespace)
        let apply = ["apply", Repo.policies + "/web-stack.policy", "--backend", backend, "--state-dir", state.path]
        let first = portcullis(namespace, apply)
        #expect(first.status == 0, "\(first.stderr)")
        let afterFirst = nftListing(namespace)
        #expect(afterFirst.contains("table inet foreign {") && afterFirst.contains("chain DOCKER-USER {"))
        #expect(portcullis(namespace, apply).stdout == "no changes: generation 1 is already applied\n")
        #expect(nftListing(namespace) == afterFirst)

        // Someone edits a table Portcullis owns: apply refuses rather than destroy the change.
        _ = namespace.exec(["nft", "add", "rule", "ip", "filter", "DOCKER-USER", "counter"])
        let drifted = portcullis(
            namespace, ["apply", Repo.policies + "/icc-off.policy", "--backend", backend, "--state-dir", state.path])
        #expect(drifted.status == 2 && drifted.stderr.contains("changed since generation 1"))
        let takeOver = portcullis(
            namespace,
            [
                "apply", Repo.policies + "/icc-off.policy", "--backend", backend, "--state-dir", state.path,
                "--take-over", "--prune",
            ])
        #expect(takeOver.status == 0 && takeOver.stdout.hasPrefix("applied generation 2"))

        // Rolling back generation 2 puts back what it replaced: the edited table.
        #expect(portcullis(namespace, ["rollback", "--state-dir", state.path]).status == 0)
        #expect(nftListing(namespace).contains("counter packets"))
        // Generation 1 is not what the kernel holds (the edit is there): rollback says so and
        // changes nothing, unless forced.
        let refused = portcullis(namespace, ["rollback", "--state-dir", state.path])
        #expect(refused.status == 2 && refused.stderr.contains("changed since generation 1"))
        #expect(portcullis(namespace, ["rollback", "--state-dir", state.path, "--force"]).status == 0)
        #expect(nftListing(namespace) == pristine)
    }

    @Test func nftRefusesATableItDidNotWrite() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        _ = namespace.exec(["nft", "add", "table", "ip", "filter"])
        _ = namespace.exec(["nft", "add", "chain", "ip", "filter", "theirs"])
        let before = nftListing(namespace)
        let refused = portcullis(
            namespace,
            ["apply", Repo.policies + "/web-stack.policy", "--backend", "nftables", "--state-dir", state.path])
        #expect(
            refused.status == 2
                && refused.stderr.contains("table ip filter already exists and was not written by Portcullis"))
        #expect(nftListing(namespace) == before)
        // Taken over, it is saved and comes back on rollback.
        let taken = portcullis(
            namespace,
            [
                "apply", Repo.policies + "/web-stack.policy", "--backend", "nftables", "--state-dir", state.path,
                "--take-over",
            ])
        #expect(taken.status == 0)
        #expect(portcullis(namespace, ["rollback", "--state-dir", state.path]).status == 0)
        #expect(nftListing(namespace) == before)
    }

    /// A ruleset the kernel rejects changes nothing, in any table, for either backend.
    @Test func rejectedRulesetChangesNothing() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        try addForeignRules(namespace)
        let good = try #require(String?(Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables")))
        // The nat table is valid; the filter table, restored second, is not.
        let bad = good.replacingOccurrences(of: "-A DOCKER-USER -j RETURN", with: "-A DOCKER-USER -j NO-SUCH-CHAIN")
        let iptablesBefore = iptablesListing(namespace)
        let nftBefore = nftListing(namespace)
        let store = StateStore(directory: state.path)
        let thrown: String? = try namespace.inside {
            do {
                try store.prepare()
                _ = try Applier(store: store, logger: Logger(label: "test")).apply(
                    files: ["iptables": bad], backend: .iptables, layout: "docker-20.10", policy: "p", takeOver: false)
                return nil
            } catch { return "\(error)" }
        }
        #expect(thrown?.contains("iptables-restore rejected the ruleset") == true, "\(thrown ?? "accepted")")
        #expect(thrown?.contains("rejected line: [0:0] -A DOCKER-USER -j NO-SUCH-CHAIN") == true, "\(thrown ?? "")")
        #expect(iptablesListing(namespace) == iptablesBefore)
        let nftThrown: String? = try namespace.inside {
            do {
                _ = try Applier(store: store, logger: Logger(label: "test")).apply(
                    files: ["nft": "table ip portcullis-test {\n\tchain a {\n\t\tjump nowhere\n\t}\n}\n"],
                    backend: .nftables,
                    layout: "docker-20.10", policy: "p", takeOver: false)
                return nil
            } catch { return "\(error)" }
        }
        #expect(nftThrown?.contains("libnftables rejected the ruleset") == true)
        #expect(nftListing(namespace) == nftBefore)
        #expect(store.generationNumbers().isEmpty)
    }

    @Test(arguments: ["iptables", "nftables", "nftables-json"])
    func checkAsksTheKernelAndChangesNothing(_ backend: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let before = nftListing(namespace)
        let result = portcullis(namespace, ["check", Repo.policies + "/web-stack.policy", "--backend", backend])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("policy is valid and the kernel accepts its ruleset"))
        #expect(nftListing(namespace) == before)
    }

    @Test func checkWithoutPrivilegeSaysWhatItChecked() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let result = run([
            "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "-all", Self.binary,
            "check",
            Repo.policies + "/web-stack.policy",
        ])
        // The policy checks are reported, but a check the kernel did not make does not pass.
        #expect(result.status == 2)
        #expect(result.stdout.contains("policy is valid and compiles"))
        #expect(result.stderr.contains("the kernel did not validate the ruleset: that needs CAP_NET_ADMIN"))
    }

    @Test func verboseShowsWhatIsSentToTheKernel() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        let result = portcullis(
            namespace,
            [
                "apply", Repo.policies + "/icc-off.policy", "--backend", "nftables", "--state-dir", state.path,
                "--verbose",
            ])
        #expect(result.status == 0)
        #expect(result.stderr.contains("libnftables <<EOF") && result.stderr.contains("chain DOCKER-USER {"))
    }

    @Test func kernelMessagesAreTracedToThePolicyLine() {
        let origin = Provenance(statement: "allow a -> b", file: "p.policy", line: 7, column: 1)
        let file = RenderedFile(
            fileExtension: "iptables", text: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j NOPE\nCOMMIT\n",
            ruleOrigins: [RuleOrigin(line: 2, provenance: origin)])
        let rejection = KernelRejection.fromIptables(
            "iptables-restore: line 3 failed", file: file, tool: "iptables-restore")
        #expect(rejection.description.contains("from allow a -> b (p.policy:7:1)"))
        // libnftables quotes the rule instead of naming its line.
        let nft = RenderedFile(
            fileExtension: "nft", text: "table ip t {\n\tchain c {\n\t\tjump nope\n\t}\n}\n",
            ruleOrigins: [RuleOrigin(line: 2, provenance: origin)])
        let quoted = KernelRejection.fromNft(
            "Error: Could not process rule: No such file or directory\njump nope\n", file: nft)
        #expect(quoted.description.contains("from allow a -> b (p.policy:7:1)"))
    }

    /// The renderers record each rule line's origin at its line number.
    @Test func renderedLinesKnowTheirStatements() throws {
        let (loaded, _) = PolicyLoader.load(Repo.policies + "/web-stack.policy")
        let policy = try Checker.check(loaded).get()
        let ruleset = try Layouts.named("docker-20.10")!.lower(policy).get()
        for renderer in [IptablesRenderer(), NftTextRenderer()] as [any Renderer] {
            let file = try #require(try renderer.render(ruleset).first)
            let lines = file.text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(file.ruleOrigins.allSatisfy { $0.line < lines.count - 1 })  // the text ends with a newline
            #expect(file.provenance(ofLine: 1) == nil)
            let flow = try #require(lines.firstIndex { $0.contains("allow web -> api") })
            #expect(file.provenance(ofLine: flow + 1)?.line == 40)  // the statement's line in web-stack.policy
        }
    }

    @Test func confirmKeepsTheNewRuleset() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        #expect(
            portcullis(namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", state.path]).status == 0)
        let waiting = try BackgroundCommand(
            [
                "ip", "netns", "exec", namespace.name, Self.binary, "apply", Repo.policies + "/web-stack.policy",
                "--state-dir",
                state.path, "--confirm", "20", "--prune",
            ])
        try waitFor { FileManager.default.fileExists(atPath: state.path + "/pending.json") }
        // A second apply while the first waits is refused instead of replacing it unconfirmed.
        let blocked = portcullis(namespace, ["apply", Repo.policies + "/seed.policy", "--state-dir", state.path])
        #expect(blocked.status == 2 && blocked.stderr.contains("generation 2 is waiting for confirmation"))
        // Confirming another generation than the one waiting confirms nothing.
        let wrong = portcullis(namespace, ["confirm", "1", "--state-dir", state.path])
        #expect(wrong.status == 2 && wrong.stderr.contains("generation 2 is the one waiting for confirmation, not 1"))
        // The record belongs to the namespace it was applied in; elsewhere it is never confirmed.
        let elsewhere = run([Self.binary, "confirm", "--state-dir", state.path])
        #expect(elsewhere.status == 2 && elsewhere.stderr.contains("another network namespace"))
        let confirm = portcullis(namespace, ["confirm", "2", "--state-dir", state.path])
        #expect(confirm.status == 0 && confirm.stdout == "confirmed generation 2\n", "\(confirm.stderr)")
        let (status, output) = waiting.finish()
        #expect(status == 0 && output.contains("confirmed generation 2"))
        #expect(iptablesListing(namespace).contains("br-front"))
    }

    @Test func unconfirmedApplyRollsBackToThePreviousListingExactly() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = StateDirectory()
        try addForeignRules(namespace)
        #expect(
            portcullis(namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", state.path]).status == 0)
        let before = iptablesListing(namespace)
        let result = portcullis(
            namespace,
            ["apply", Repo.policies + "/web-stack.policy", "--state-dir", state.path, "--confirm", "1", "--prune"])
        #expect(result.status == 1 && result.stderr.contains("no confirmation within 1 s"))
        #expect(iptablesListing(namespace) == before)
        #expect(
            portcullis(namespace, ["apply", Repo.policies + "/icc-off.policy", "--state-dir", state.path]).stdout
                == "no changes: generation 1 is already applied\n")
    }
}

/// A command left running while the test goes on; its output is read when it finishes.
final class BackgroundCommand {
    let process = Process()
    let output = Pipe()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func finish() -> (Int32, String) {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Polls `condition` for up to `seconds`.
func waitFor(seconds: Double = 20, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < deadline else { throw NamespaceError(message: "timed out waiting") }
        usleep(50_000)
    }
}
