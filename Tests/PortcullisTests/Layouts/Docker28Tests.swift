import Foundation
import PortcullisCompiler
import Testing

/// The docker-28 layout against the VERBATIM Docker 28.2.2-28.5.2 dumps of docker-rules.md
/// section 5 (moby's generated iptables docs), converted to iptables-save form in
/// Fixtures/docker-28: each scenario's policy must compile to exactly the tables the source
/// prints (a table the source leaves out, such as raw in 5.2, 5.6 and 5.7, is not compared).
@Suite struct Docker28Tests {
    static let fixtures = VerbatimFixtures.docker28
    static var scenarios: [String] { fixtures.scenarios }

    @Test func everyVerbatimScenarioIsThere() {
        #expect(
            Self.scenarios == [
                "s52-new-daemon", "s53-usernet-portmap", "s54-usernet-portmap-lo", "s55-usernet-portmap-noicc",
                "s56-usernet-internal", "s57-usernet-portmap-noproxy",
            ])
    }

    @Test(arguments: scenarios)
    func compilesToTheVerbatimTables(_ scenario: String) throws {
        let actual = VerbatimFixtures.tables(try Self.fixtures.compile(scenario))
        let expected = VerbatimFixtures.tables(Repo.read("\(Self.fixtures.directory)/\(scenario).rules"))
        #expect(expected["filter"] != nil && expected["nat"] != nil)
        for (name, text) in expected.sorted(by: { $0.key < $1.key }) {
            let compiled = actual[name] ?? ""
            #expect(
                compiled == text,
                "\(name): \(UnifiedDiff.make(old: text, new: compiled, oldName: "docker 28", newName: "compiled") ?? "")"
            )
        }
        // Nothing beyond what the source shows, except a raw table it did not print.
        #expect(Set(actual.keys).subtracting(expected.keys).subtracting(["raw"]).isEmpty)
    }
}
