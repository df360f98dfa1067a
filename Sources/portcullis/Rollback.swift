import ArgumentParser
import Foundation
import PortcullisKernel

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo the latest apply: put the previous generation back, atomically.",
        discussion: """
            The generation before the latest is applied again with the same ownership rules as
            'apply' (rules and tables of other tools are left alone); after the first generation,
            rolling back removes Portcullis' rules and restores any table it took over.

            Example:
              portcullis rollback --state-dir /var/lib/portcullis
            """)

    @OptionGroup var kernel: KernelOptions

    func run() throws {
        let logger = kernel.logger()
        let store = StateStore(directory: kernel.stateDir)
        do {
            try store.prepare()
            let lock = try StateLock(store: store, timeout: kernel.lockTimeout)
            defer { withExtendedLifetime(lock) {} }
            switch try Applier(store: store, logger: logger).rollback() {
            case .nothingToRollBack:
                print("nothing to roll back: no generation in \(store.directory)")
            case .rolledBack(let from, let to):
                print(
                    "rolled back generation \(from)"
                        + (to.map { "; generation \($0) is current" } ?? "; no Portcullis rules are left"))
            }
        } catch {
            throw kernelFailure(error)
        }
    }
}

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Confirm an 'apply --confirm' that is waiting, so it keeps its ruleset.",
        discussion: """
            Example (from a second shell, while 'portcullis apply --confirm 60' waits):
              portcullis confirm
            """)

    @Option(help: "The state directory of the waiting apply.")
    var stateDir = "/var/lib/portcullis"

    func run() throws {
        guard let generation = StateStore(directory: stateDir).confirmPending() else {
            printError("nothing is waiting for confirmation in \(stateDir)")
            throw ExitCode(1)
        }
        print("confirmed generation \(generation)")
    }
}
