import Configuration

extension ConfigReader {
    /// The reader of `settings`, from (first one that has a setting wins) `commandLine` (values by key), the
    /// environment, and the files that secrets' `*_FILE` variables name. An empty variable counts as unset. Throws
    /// when two variables give one setting (`X` and `X_FILE`), or a secret's file cannot be read or is malformed.
    static func processorSettings(
        _ settings: [ProcessorSetting] = ProcessorSetting.all, commandLine: [String: String] = [:],
        environment: [String: String]
    ) throws -> ConfigReader {
        let variables = Set(settings.flatMap { [$0.environment, $0.fileEnvironment].compactMap(\.self) })
        // Only the table's variables: a setting without one (--max-attempts) must not find a stray MAX_ATTEMPTS.
        let environment = environment.filter { variables.contains($0.key) && !$0.value.isEmpty }
        try checkOneSourceEach(settings, environment)
        let byKey = Dictionary(settings.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let secrets = Set(settings.filter { $0.secretFile != nil }.compactMap(\.environment))
        let environmentProvider = KeyMappingProvider(
            upstream: EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secrets))
        ) { key in
            byKey[key.components.joined(separator: ".")]?.environment.map { AbsoluteConfigKey([$0]) } ?? key
        }
        return ConfigReader(providers: [
            InMemoryProvider(
                name: "command line",
                values: Dictionary(uniqueKeysWithValues: commandLine.map { key, value in
                    (AbsoluteConfigKey(ConfigKey(key)), ConfigValue(.string(value), isSecret: byKey[key]?.secretFile != nil))
                })),
            environmentProvider,
            try SecretFiles.provider(settings, environment: environment),
        ])
    }

    /// `X` and `X_FILE` (or two names of one setting, `SLIPWAY_AMQP_URL` and `SLIPWAY_AMQP_URLS`) set at once: nobody
    /// can tell which one was meant.
    private static func checkOneSourceEach(_ settings: [ProcessorSetting], _ environment: [String: String]) throws {
        let groups = Dictionary(grouping: settings, by: { $0.sameAs ?? $0.key })
        for setting in settings where setting.sameAs == nil {
            let names = groups[setting.key, default: []].flatMap { [$0.environment, $0.fileEnvironment].compactMap(\.self) }
            let set = names.filter { environment[$0] != nil }
            if set.count > 1 { throw ProcessorError(.badOption, "both \(set[0]) and \(set[1]) are set: unset one") }
        }
    }

    /// The value of `setting`, if any source gives one.
    func value(_ setting: ProcessorSetting) -> String? {
        string(forKey: ConfigKey(setting.key), isSecret: setting.secretFile != nil)
    }
}
