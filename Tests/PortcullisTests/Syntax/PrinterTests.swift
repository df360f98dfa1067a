import Foundation
import PortcullisCompiler
import PortcullisSyntax
import Testing

/// The printer: canonical text from a syntax tree, comments where they were, a fixed point, and
/// the same rules compiled from what it prints as from what it read.
@Suite struct PrinterTests {
    /// Every policy file shipped, the included fragments among them, relative to policies/.
    static let policyFiles: [String] = {
        let files = FileManager.default.enumerator(atPath: Repo.policies)?.compactMap { $0 as? String } ?? []
        return files.filter { $0.hasSuffix(".policy") }.sorted()
    }()

    /// Parses without a diagnostic and prints.
    func formatted(_ text: String, file: String = "p.policy") throws -> String {
        let (syntax, diagnostics) = Parser.parse(text, file: file)
        try #require(diagnostics.isEmpty, "\(diagnostics)")
        return Printer.print(syntax)
    }

    @Test func everyShippedPolicyIsFound() {
        #expect(Self.policyFiles.contains("web-stack.policy"))
        #expect(Self.policyFiles.contains("include/networks.policy"))
    }

    @Test(arguments: policyFiles)
    func printingAgainChangesNothing(_ file: String) throws {
        let once = try formatted(Repo.read(Repo.policies + "/" + file))
        #expect(try formatted(once) == once)
    }

    /// Every shipped policy, printed (its includes too), compiles to exactly its golden files.
    @Test(arguments: GoldenTests.policies)
    func printedPolicyCompilesToItsGoldenFiles(_ name: String) throws {
        let scratch = NSTemporaryDirectory() + "portcullis-printer-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for file in Self.policyFiles {
            let path = scratch + "/" + file
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try formatted(Repo.read(Repo.policies + "/" + file)).write(toFile: path, atomically: true, encoding: .utf8)
        }
        let comparisons = try Goldens(directory: Repo.golden).compare(policyPath: scratch + "/" + name).get()
        #expect(!comparisons.isEmpty)
        for comparison in comparisons { #expect(comparison.diff == nil, "\(comparison.diff ?? "")") }
    }

    @Test func layoutIsNormalized() throws {
        let text = """


            host { layout docker-1.5
              backend   iptables }
            network bridge {

            \tbridge docker0
            subnet 172.17.0.0/16


            }
            service a { 1/tcp }
            service b {2/tcp,3/udp}


            allow x->y port 80/tcp,
                 81/tcp
            deny   x -> y
            """
        #expect(
            try formatted(text) == """
                host {
                    layout docker-1.5
                    backend iptables
                }

                network bridge {
                    bridge docker0
                    subnet 172.17.0.0/16
                }

                service a { 1/tcp }
                service b { 2/tcp, 3/udp }

                allow x -> y port 80/tcp, 81/tcp
                deny x -> y

                """)
    }

    @Test func commentsStayWhereTheyWere() throws {
        let text = """
            # The file's header.

            # About the host.
            host {   # opening
                # above layout
                layout docker-20.10     # trailing
                # before the closing brace
            }   # after the block
            # about c
            container c {
                attach n 10.0.0.2
            }
            allow c -> d   # why
            # the end
            """
        #expect(
            try formatted(text) == """
                # The file's header.

                # About the host.
                host {  # opening
                    # above layout
                    layout docker-20.10  # trailing
                    # before the closing brace
                }  # after the block

                # about c
                container c {
                    attach n 10.0.0.2
                }

                allow c -> d  # why
                # the end

                """)
    }

    /// A setting is printed on one line: comments on the lines it spanned move above it.
    @Test func commentsInsideAContinuedSettingMoveAboveIt() throws {
        let text = """
            container c {
                publish 80 -> 80/tcp from 10.0.0.0/8,   # office
                    192.0.2.0/24   # lab
            }
            """
        #expect(
            try formatted(text) == """
                container c {
                    # office
                    publish 80 -> 80/tcp from 10.0.0.0/8, 192.0.2.0/24  # lab
                }

                """)
    }

    /// A list written over several lines keeps a line per item, and the comments of each.
    @Test func listsOnSeveralLinesKeepAnItemPerLine() throws {
        let text = """
            addresses office {  # offices
                # north
                203.0.113.0/25,   # main
                203.0.113.128/25  ,
                198.51.100.0/24   # lab
                , 192.0.2.0/24
                # more to come
            }
            group g { a b }
            """
        #expect(
            try formatted(text) == """
                addresses office {  # offices
                    # north
                    203.0.113.0/25,  # main
                    203.0.113.128/25,
                    198.51.100.0/24,  # lab
                    192.0.2.0/24
                    # more to come
                }

                group g { a, b }

                """)
    }

    @Test func stringsAreQuotedWhereTheyMustBe() throws {
        let text = #"""
            include "sub dir/a \"b\".policy"
            host {
                log-drops rate 5/minute prefix drop:
            }
            host { log-drops prefix "a \\ \"q\" " }
            network n { bridge "br0" }
            """#
        #expect(
            try formatted(text) == #"""
                include "sub dir/a \"b\".policy"

                host {
                    log-drops rate 5/minute prefix "drop:"
                }

                host {
                    log-drops prefix "a \\ \"q\" "
                }

                network n {
                    bridge br0
                }

                """#)
    }

    /// Words that are not words any more (built in memory) are written as strings, so that
    /// they read back as the same value.
    @Test func valuesThatAreNotWordsAreQuoted() throws {
        let setting = Setting(
            keyword: .unplaced("external"), values: [.unplaced("eth 0"), .unplaced("a->b"), .unplaced("")])
        let file = SyntaxFile(
            path: "p.policy",
            statements: [.block(Block(kind: .host, name: nil, settings: [setting]))])
        let text = Printer.print(file)
        #expect(text == "host {\n    external \"eth 0\", \"a->b\", \"\"\n}\n")
        let (reparsed, diagnostics) = Parser.parse(text, file: "p.policy")
        #expect(diagnostics.isEmpty)
        guard case .block(let block) = reparsed.statements.first else {
            Issue.record("no block")
            return
        }
        #expect(block.settings.first?.values.map(\.value) == ["eth 0", "a->b", ""])
    }

    /// A tree built in memory is placed where the printed text has each word.
    @Test func printedTreesArePlaced() throws {
        let rule = Setting(
            keyword: .unplaced("allow"), values: [.unplaced("a")],
            clauses: [Clause(keyword: .unplaced("->"), values: [.unplaced("b")])],
            leadingTrivia: [.comment("# a comment")])
        let container = Block(
            kind: .container, name: .unplaced("a"),
            settings: [Setting(keyword: .unplaced("attach"), values: [.unplaced("n"), .unplaced("10.0.0.2")])])
        let (text, placed) = Printer.printPlaced(
            SyntaxFile(path: "imported", statements: [.block(container), .rule(rule)]))
        #expect(text == "container a {\n    attach n 10.0.0.2\n}\n\n# a comment\nallow a -> b\n")
        #expect(try formatted(text) == text)
        guard case .block(let block) = placed.statements[0], case .rule(let allow) = placed.statements[1] else {
            Issue.record("statements changed")
            return
        }
        #expect(block.settings[0].values[1].range.start.description == "imported:2:14")
        #expect(allow.clauses[0].values[0].range.start.description == "imported:6:12")
    }

    @Test func emptyAndCommentOnlyFiles() throws {
        #expect(try formatted("") == "")
        #expect(try formatted("\n\n") == "")
        #expect(try formatted("\n# only\n\n\n# comments\n\n") == "# only\n\n# comments\n")
    }
}
