import Foundation
import JanssonKit
import PortcullisIR
import PortcullisNet
import PortcullisReaders
import PortcullisRender
import PortcullisSyntax
import Testing

import PortcullisPolicy

/// Input written to break the readers and the checker: numbers out of range, CRLF files, text
/// that only looks like a ruleset, values nft cannot take, and many overlapping networks. Each
/// is read correctly or refused with its location; none crashes, hangs or audits as clean.
@Suite struct HostileInputTests {
    // MARK: - JSON numbers

    @Test func realsAreKeptAsRealsNotConverted() throws {
        let document = try JSON.parse(#"{"a": [3, -1e19, 80.5, 1e308]}"#)
        #expect(document == .object([("a", .array([.integer(3), .real(-1e19), .real(80.5), .real(1e308)]))]))
        #expect(document["a"]?.arrayValue?[1].integerValue == nil)
        #expect(document.firstReal?.path == "$.a[1]")
        #expect(try JSON.parse(document.rendered(indent: 0)) == document)
    }

    @Test(arguments: [
        (
            #"{"nftables":[{"metainfo":{"json_schema_version":-1e19}}]}"#,
            "$.nftables[0].metainfo.json_schema_version: -1e+19 is not an integer"
        ),
        (
            ReaderTests.document(
                #"{"chain": {"family": "ip", "table": "t", "name": "c"}}"#,
                #"{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80.5}}]}}"#
            ),
            "$.nftables[2].rule.expr[0].match.right: 80.5 is not an integer"
        ),
        (
            ReaderTests.document(
                #"{"chain": {"family": "ip", "table": "t", "name": "c", "type": "filter", "hook": "input", "prio": 9223372036854775807}}"#
            ),
            "$.nftables[1].chain.prio: 9223372036854775807 is out of range"
        ),
    ])
    func numbersOutOfRangeAreErrorsWithTheirPath(_ text: String, _ message: String) {
        #expect {
            _ = try NftJSONReader().read(text)
        } throws: { error in
            (error as? ReadError).map { "\($0)".contains(message) } ?? false
        }
    }

    /// The document of the report crashed `audit` and `import`; both now exit 2 naming the path.
    @Test(arguments: [["audit", "--ruleset", "-"], ["import", "--from", "nft-json", "-"]])
    func commandsRefuseAnOutOfRangeNumber(_ arguments: [String]) {
        let result = run(
            [CommandLineTests.binary] + arguments, input: #"{"nftables":[{"metainfo":{"json_schema_version":-1e19}}]}"#)
        #expect(result.status == 2)
        #expect(result.stderr.contains("$.nftables[0].metainfo.json_schema_version"), "\(result.stderr)")
    }

    @Test func negativeRatesAreNotModelled() throws {
        let text = ReaderTests.document(
            #"{"chain": {"family": "ip", "table": "t", "name": "c"}}"#,
            #"{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"limit": {"rate": -5, "per": "second"}}]}}"#
        )
        let result = try NftJSONReader().read(text)
        #expect(
            result.ruleset.tables[0].chains[0].rules[0].matches.allSatisfy {
                if case .opaque = $0 { true } else { false }
            })
        #expect(result.warnings.count == 1)
    }

    /// libjansson stops at 2048 levels; deeper documents are errors, shallower ones are read.
    @Test(arguments: [100, 2000, 5000])
    func deeplyNestedJSONIsReadOrRefused(_ depth: Int) {
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: ReadError.self) { _ = try NftJSONReader().read(text) }
    }
}
