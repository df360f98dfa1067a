import Foundation
import PortcullisCompiler
import Testing

/// The docker-29 layout against the VERBATIM Docker 29.x (iptables backend) dumps of
/// docker-rules.md section 6.1 to 6.6 (moby's generated iptables docs), converted to
/// iptables-save form in Fixtures/docker-29: each scenario's policy must compile to exactly the
/// tables the source prints (a table the source leaves out, such as nat in 6.4 or filter in 6.6,
/// is not compared).
@Suite struct Docker29Tests {
    static let directory = Repo.fixtures + "/docker-29"
    static var scenarios: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".policy") }
            .sorted()
            .map { String($0.dropLast(".policy".count)) }
    }

    /// iptables-save text split per table (`*name` ... `COMMIT`), `#` lines dropped.
    static func tables(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var current: (name: String, lines: [String])?
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("*") { current = (String(line.dropFirst()), []) }
            current?.lines.append(String(line))
            if line == "COMMIT", let table = current {
                result[table.name] = table.lines.joined(separator: "\n") + "\n"
                current = nil
            }
        }
        return result
    }

    static func compile(_ scenario: String) throws -> String {
        let files = try Compiler().compile("\(directory)/\(scenario).policy", layout: "docker-29", backend: "iptables")
            .get()
        #expect(files.count == 1)
        return files[0].text
    }

    @Test func everyVerbatimScenarioIsThere() {
        #expect(
            Self.scenarios == [
                "s61-new-daemon", "s62-usernet-portmap", "s63-usernet-portmap-lo", "s64-usernet-portmap-noicc",
                "s65-usernet-internal", "s66-usernet-portmap-noproxy",
            ])
    }

    @Test(arguments: scenarios)
    func compilesToTheVerbatimTables(_ scenario: String) throws {
        let actual = Self.tables(try Self.compile(scenario))
        let expected = Self.tables(Repo.read("\(Self.directory)/\(scenario).rules"))
        #expect(!expected.isEmpty)
        for (name, text) in expected.sorted(by: { $0.key < $1.key }) {
            let compiled = actual[name] ?? ""
            #expect(
                compiled == text,
                "\(name): \(UnifiedDiff.make(old: text, new: compiled, oldName: "docker 29", newName: "compiled") ?? "")"
            )
        }
        // Nothing beyond the tables Docker writes (the source does not print all of them).
        #expect(Set(actual.keys).isSubset(of: ["raw", "filter", "nat"]))
    }

    /// Tables come out in iptables-nft-save's order: mangle, raw, filter, nat.
    @Test func tablesAreInSaveOrder() throws {
        let text = try Self.compile("s63-usernet-portmap-lo")
        let names = text.split(separator: "\n").filter { $0.hasPrefix("*") }
        #expect(names == ["*raw", "*filter", "*nat"])
    }

    /// As since 28.2.2, DOCKER-USER is created empty; the policy's own rules are its whole content.
    @Test func userRulesAreTheWholeUserChain() throws {
        let base = Repo.read("\(Self.directory)/s62-usernet-portmap.policy")
        let empty = try compileInline(base, layout: "docker-29").get()
        #expect(rules(empty, chain: "DOCKER-USER").isEmpty)
        let text = try compileInline(
            base + "\ncontainer c2 {\n    attach bridge1 192.0.2.3\n}\ndeny c2 -> c1 port 80/tcp\n", layout: "docker-29"
        ).get()
        #expect(
            rules(text, chain: "DOCKER-USER") == [
                "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portcullis: replies to accepted connections\" -j ACCEPT",
                "-A DOCKER-USER -s 192.0.2.3/32 -d 192.0.2.2/32 -i bridge1 -o bridge1 -p tcp -m tcp --dport 80 -m comment --comment \"portcullis: deny c2 -> c1 port 80/tcp\" -j DROP",
            ])
        // Every container address on a non-internal network gets its raw direct-access drop.
        #expect(
            rules(text, chain: "PREROUTING").filter { $0.contains("! -i bridge1") } == [
                "-A PREROUTING -d 192.0.2.2/32 ! -i bridge1 -j DROP",
                "-A PREROUTING -d 192.0.2.3/32 ! -i bridge1 -j DROP",
            ])
    }

    /// Several bindings: each per-port ACCEPT is inserted at the head of DOCKER (so they end up
    /// in reverse binding order, above the bridge's DROP); DNATs are appended.
    @Test func perPortAcceptsAreInsertedAboveTheBridgeDrop() throws {
        let text = try compileInline(
            """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            container web {
                attach bridge 172.17.0.2
                publish 8443 -> 443/tcp
                publish 8080 -> 80/tcp
                publish 5353 -> 53/udp
            }

            """, layout: "docker-29"
        ).get()
        #expect(
            rules(text, chain: "DOCKER").filter { $0.contains("-j ACCEPT") || $0.contains("-j DROP") } == [
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p udp -m udp --dport 53 -j ACCEPT",
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 443 -j ACCEPT",
                "-A DOCKER ! -i docker0 -o docker0 -j DROP",
            ])
        #expect(
            rules(text, chain: "DOCKER").filter { $0.contains("DNAT") } == [
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 172.17.0.2:443",
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
                "-A DOCKER ! -i docker0 -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:53",
            ])
    }

    /// Docker 29 keeps the raw direct-access drops, so an allowed flow between bridges needs its
    /// exceptions on top of raw PREROUTING, above the drops; no isolation chain is written.
    @Test func crossBridgeAllowGetsRawExceptions() throws {
        let base = Repo.read("\(Self.directory)/s62-usernet-portmap.policy")
        let text = try compileInline(
            base + "\ncontainer c2 {\n    attach bridge 172.17.0.2\n}\nallow c2 -> c1 port 80/tcp\n",
            layout: "docker-29"
        ).get()
        #expect(
            rules(text, chain: "PREROUTING").filter { !$0.contains("addrtype") } == [
                "-A PREROUTING -s 172.17.0.2/32 -d 192.0.2.2/32 -i docker0 -p tcp -m tcp --dport 80 -m comment --comment \"portcullis: allow c2 -> c1 port 80/tcp\" -j ACCEPT",
                "-A PREROUTING -s 192.0.2.2/32 -d 172.17.0.2/32 -i bridge1 -p tcp -m tcp --sport 80 -m comment --comment \"portcullis: allow c2 -> c1 port 80/tcp\" -j ACCEPT",
                "-A PREROUTING -d 192.0.2.2/32 ! -i bridge1 -j DROP",
                "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP",
            ])
        #expect(!text.contains("DOCKER-ISOLATION"))
    }

    /// Docker 29 writes ip6tables rules for IPv6 networks, which this layout does not.
    @Test func refusesIPv6() throws {
        let policy = """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
                subnet fd00::/64
            }
            container web {
                attach bridge 172.17.0.2
                attach bridge fd00::2
                publish [::1]:8080 -> 80/tcp
            }

            """
        guard case .failure(.diagnostics(let diagnostics, _)) = compileInline(policy, layout: "docker-29") else {
            Issue.record("an IPv6 network compiled with docker-29")
            return
        }
        #expect(
            diagnostics.map(\.message).sorted() == [
                "layout docker-29 cannot express a publish on an IPv6 host address",
                "layout docker-29 cannot express an IPv6 subnet (network 'bridge')",
            ])
    }
}

/// The kernel's verdict: every scenario's compiled ruleset loads with iptables-restore in a
/// fresh namespace and reads back byte for byte with iptables-save.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct Docker29KernelTests {
    @Test(arguments: Docker29Tests.scenarios)
    func loadsAndSavesIdentically(_ scenario: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = try Docker29Tests.compile(scenario)
        let namespace = try TestNamespace()
        let load = namespace.exec(["iptables-restore"], input: text)
        try #require(load.status == 0, "iptables-restore: \(load.stderr)")
        #expect(namespace.savedIptables() == text)
    }
}
