import Foundation
import NftablesKit
import Testing

@testable import PortcullisKernel

/// Incremental apply: when a new policy differs from the applied one only in set and map
/// elements (a container started or stopped, a port published), `apply` sends those elements
/// in one transaction and says so; anything else replaces the tables. Drift is still found.
@Suite(.serialized) struct IncrementalApplyTests {
    static let host = """
        network front {
            bridge br-front
            subnet 198.18.131.0/24
        }
        container web {
            attach front 198.18.131.10
            publish 8080 -> 80/tcp
        }
        container api {
            attach front 198.18.131.20
            publish 9000 -> 9000/tcp
        }

        """
    static let withWorker =
        host + """
            container worker {
                attach front 198.18.131.30
                publish 8081 -> 81/tcp
            }

            """
    static let withFlow = withWorker + "deny worker -> api\n"

    final class Scratch {
        let path = NSTemporaryDirectory() + "portcullis-incremental-\(getpid())-\(UUID().uuidString.prefix(8))"
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func policy(_ name: String, _ text: String) throws -> String {
            let file = path + "/" + name + ".policy"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }
    }

    @Test(.enabled(if: Kernel.enabled, Kernel.reason), arguments: ["nftables", "nftables-json"])
    func onlyElementsChangeWhenContainersComeAndGo(_ backend: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let scratch = try Scratch()
        let state = scratch.path + "/state"
        func apply(_ policy: String, _ extra: [String] = []) -> CommandResult {
            namespace.exec(
                [
                    CommandLineTests.binary, "apply", policy, "--layout", "native", "--backend", backend, "--state-dir",
                    state,
                ]
                    + extra)
        }
        func audit(_ policy: String) -> CommandResult {
            namespace.exec([
                CommandLineTests.binary, "audit", policy, "--live", "--layout", "native", "--backend", backend,
            ])
        }
        let (host, withWorker, withFlow) = (
            try scratch.policy("host", Self.host), try scratch.policy("worker", Self.withWorker),
            try scratch.policy("flow", Self.withFlow)
        )

        let first = apply(host)
        #expect(first.status == 0 && first.stdout.contains("replaced the ruleset"), "\(first.stdout)\(first.stderr)")
        // One new container with one publish: its address and port in the two DNAT maps.
        let started = apply(withWorker)
        #expect(
            started.status == 0
                && started.stdout.contains("only set elements changed, 2 added and 0 removed in one transaction"),
            "\(started.stdout)\(started.stderr)")
        let matches = audit(withWorker)
        #expect(matches.status == 0, "the kernel holds the new policy: \(matches.stdout)\(matches.stderr)")
        // A new statement is a new rule: the table is replaced.
        let flow = apply(withFlow)
        #expect(flow.status == 0 && flow.stdout.contains("replaced the ruleset"), "\(flow.stdout)")
        // Back to the first host: the worker's elements go, and so does the rule, so replaced.
        let stopped = apply(withWorker)
        #expect(stopped.stdout.contains("replaced the ruleset"))
        // The worker's address is in the host's rules and the policy no longer names it: apply
        // refuses to cut it off unless told to prune.
        let guarded = apply(host)
        #expect(
            guarded.status == 2 && guarded.stderr.contains("would remove every rule of container addresses"),
            "\(guarded.stderr)")
        let removed = apply(host, ["--prune"])
        #expect(
            removed.stdout.contains("only set elements changed, 0 added and 2 removed"), "\(removed.stdout)")
        #expect(audit(host).status == 0)

        // Rolling back an element change puts the elements back.
        let back = namespace.exec([CommandLineTests.binary, "rollback", "--state-dir", state])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(audit(withWorker).status == 0)

        // An element removed by hand is drift, found even though no rule changed.
        let edit = namespace.exec([
            "nft", "delete", "element", "inet", "portcullis", "publish-address-v4", "{ tcp . 8081 }",
        ])
        try #require(edit.status == 0, "\(edit.stderr)")
        let refused = apply(host)
        #expect(refused.status == 2 && refused.stderr.contains("changed since generation"), "\(refused.stderr)")
        let takenOver = apply(host, ["--take-over", "--prune"])
        #expect(takenOver.status == 0 && takenOver.stdout.contains("replaced the ruleset"), "\(takenOver.stderr)")
        #expect(audit(host).status == 0)
        // The same edit with the policy unchanged since: --take-over still puts the rules back
        // (what `watch` repairs drift with), not "no changes".
        try #require(
            namespace.exec(["nft", "delete", "element", "inet", "portcullis", "publish-address-v4", "{ tcp . 9000 }"])
                .status == 0)
        let repaired = apply(host, ["--take-over"])
        #expect(repaired.status == 0 && repaired.stdout.contains("replaced the ruleset"), "\(repaired.stdout)")
        #expect(audit(host).status == 0)
    }

    @Test(.enabled(if: Kernel.enabled, Kernel.reason))
    func theRulesetGenerationMovesWithEveryCommit() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let before = try namespace.inside { RulesetGeneration.current() }
        let unchanged = try namespace.inside { RulesetGeneration.current() }
        #expect(before != nil && before == unchanged)
        #expect(namespace.exec(["nft", "add", "table", "ip", "scratch"]).status == 0)
        let after = try namespace.inside { RulesetGeneration.current() }
        #expect(after.map { $0 != before } == true)
    }

    /// A table as the nft text renderer writes it, with `elements` in its map.
    static func table(_ elements: [String], verdict: String = "accept", type: String = "ipv4_addr") -> String {
        """
        table inet t {
            map m {
                type inet_service : \(type)
                elements = { \(elements.joined(separator: ",\n            ")) }
            }

            chain c {
                tcp dport 22 \(verdict)
            }
        }

        """
    }

    static func change(_ old: String, _ new: String) -> ElementChange? {
        let (before, after) = (NftText(old), NftText(new))
        return ElementChange(from: before, to: after, diff: RulesetDiff(from: before.groups, to: after.groups))
    }

    @Test func elementChangesAreFoundAndNothingElseIs() throws {
        let old = Self.table(["80 : 198.18.0.1", "81 : 198.18.0.2"])
        let new = Self.table(["80 : 198.18.0.1", "81 : 198.18.0.3", "82 : 198.18.0.4"])
        let change = try #require(Self.change(old, new))
        #expect(change.added == 2 && change.removed == 1)
        // The changed mapping is deleted by its key and added with its new value, deletes first.
        #expect(
            change.batch == """
                delete element inet t m { 81 }
                add element inet t m { 81 : 198.18.0.3, 82 : 198.18.0.4 }

                """)
        // Elements in another order, or another line layout, are the same elements.
        let reordered = Self.table(["82 : 198.18.0.4", "81 : 198.18.0.3", "80 : 198.18.0.1"])
        #expect(Self.change(new, reordered.replacingOccurrences(of: ",\n            ", with: ", "))?.batch == "")
        // A rule or a declaration that changes is not an element change.
        #expect(Self.change(old, Self.table(["80 : 198.18.0.1"], verdict: "drop")) == nil)
        #expect(Self.change(old, Self.table(["80 : 198.18.0.1"], type: "ipv6_addr")) == nil)
        #expect(Self.change(old, "table inet t {\n}\n") == nil)
    }
}
