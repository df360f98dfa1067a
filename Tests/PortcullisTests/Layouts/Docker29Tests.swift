import Foundation
import PortcullisCompiler
import Testing

/// The docker-29 layout against the VERBATIM Docker 29.x (iptables backend) dumps of
/// docker-rules.md section 6.1 to 6.6 (moby's generated iptables docs), converted to
/// iptables-save form in Fixtures/docker-29: each scenario's policy must compile to exactly the
/// tables the source prints (a table the source leaves out, such as nat in 6.4 or filter in 6.6,
/// is not compared).
@Suite struct Docker29Tests {
    static let fixtures = VerbatimFixtures.docker29
    static var scenarios: [String] { fixtures.scenarios }

    @Test func everyVerbatimScenarioIsThere() {
        #expect(
            Self.scenarios == [
                "s61-new-daemon", "s62-usernet-portmap", "s63-usernet-portmap-lo", "s64-usernet-portmap-noicc",
                "s65-usernet-internal", "s66-usernet-portmap-noproxy",
            ])
    }

    @Test(arguments: scenarios)
    func compilesToTheVerbatimTables(_ scenario: String) throws {
        let actual = VerbatimFixtures.tables(try Self.fixtures.compile(scenario))
        let expected = VerbatimFixtures.tables(Repo.read("\(Self.fixtures.directory)/\(scenario).rules"))
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

    /// Docker 29 keeps the raw direct-access drops, so an allowed flow between bridges needs its
    /// exceptions on top of raw PREROUTING, above the drops; no isolation chain is written.
    @Test func crossBridgeAllowGetsRawExceptions() throws {
        let base = Repo.read("\(Self.fixtures.directory)/\(Self.fixtures.portmap).policy")
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
}
