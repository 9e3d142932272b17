using System.Security.Cryptography;
using System.Text.Json;
using PamEventStore.Storage;

namespace PamEventStore.Crypto;

/// <summary>
/// The master keys that wrap every org's data keys. They come from configuration
/// (<c>Encryption:MasterKeys:&lt;id&gt;</c> = base64 of 32 bytes, <c>Encryption:ActiveMasterKeyId</c>);
/// older keys stay configured after a rotation so the data keys they wrapped can still be unwrapped
/// until <c>rotate-keys --rewrap</c> has re-wrapped them. Outside Production, when none is configured,
/// one is generated once under the local data directory so a developer's recordings survive restarts.
/// </summary>
public sealed class MasterKeys
{
    private readonly IReadOnlyDictionary<string, byte[]> _keys;

    public MasterKeys(IReadOnlyDictionary<string, byte[]> keys, string activeKeyId)
    {
        if (keys.Count == 0) throw new StartRefusedException("No master key is configured.");
        foreach (var (id, key) in keys)
        {
            if (key.Length != AesGcmEnvelope.KeySize)
                throw new StartRefusedException($"Master key '{id}' must be {AesGcmEnvelope.KeySize} bytes (base64 of 32 random bytes), not {key.Length}.");
        }

        if (!keys.ContainsKey(activeKeyId))
            throw new StartRefusedException($"Encryption:ActiveMasterKeyId '{activeKeyId}' names no configured master key.");

        _keys = keys;
        ActiveKeyId = activeKeyId;
    }

    public string ActiveKeyId { get; }

    public ReadOnlySpan<byte> Active => _keys[ActiveKeyId];

    public bool TryGet(string keyId, out ReadOnlySpan<byte> key)
    {
        var found = _keys.TryGetValue(keyId, out var bytes);
        key = bytes;
        return found;
    }

    public static MasterKeys FromConfiguration(IConfiguration configuration, IHostEnvironment environment, LocalDataDirectory dataDirectory)
    {
        var section = configuration.GetSection("Encryption:MasterKeys");
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var child in section.GetChildren())
        {
            try
            {
                keys[child.Key] = Convert.FromBase64String(child.Value ?? "");
            }
            catch (FormatException)
            {
                throw new StartRefusedException($"Encryption:MasterKeys:{child.Key} is not valid base64.");
            }
        }

        if (keys.Count > 0)
        {
            var active = configuration["Encryption:ActiveMasterKeyId"] ?? (keys.Count == 1 ? keys.Keys.Single() : null)
                         ?? throw new StartRefusedException("Several master keys are configured: set Encryption:ActiveMasterKeyId to the one new data keys are wrapped with.");
            return new MasterKeys(keys, active);
        }

        if (environment.IsProduction())
        {
            throw new StartRefusedException(
                "No master key is configured. Production never generates one: set Encryption:MasterKeys:<id> to the base64 of 32 random bytes " +
                "(for example `openssl rand -base64 32`), e.g. the environment variable Encryption__MasterKeys__mk1.");
        }

        // A key named as active while none is configured would be silently passed over for the generated one.
        if (configuration["Encryption:ActiveMasterKeyId"] is { Length: > 0 } named)
        {
            throw new StartRefusedException(
                $"Encryption:ActiveMasterKeyId '{named}' is set but no Encryption:MasterKeys are: configure that key too, or remove the setting to use the generated development key.");
        }

        return DevelopmentKeys(dataDirectory);
    }

    private sealed record KeyFile(string Active, Dictionary<string, string> Keys);

    private static MasterKeys DevelopmentKeys(LocalDataDirectory dataDirectory)
    {
        var json = dataDirectory.ReadOrCreateSecret("master-keys.json", () =>
        {
            var id = $"dev-{DateTime.UtcNow:yyyyMMdd}";
            return JsonSerializer.Serialize(new KeyFile(id, new() { [id] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(AesGcmEnvelope.KeySize)) }));
        });
        var stored = JsonSerializer.Deserialize<KeyFile>(json)
                     ?? throw new StartRefusedException($"{dataDirectory.PathOf("master-keys.json")} is empty.");
        return new MasterKeys(stored.Keys.ToDictionary(k => k.Key, k => Convert.FromBase64String(k.Value)), stored.Active);
    }
}

/// <summary>
/// Loads the master keys as the service starts: without one, Production stops here with the reason
/// rather than failing its first upload.
/// </summary>
public sealed class MasterKeysAtStartup(MasterKeys keys, ILogger<MasterKeysAtStartup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogInformation("Data keys are wrapped with master key {MasterKeyId}", keys.ActiveKeyId);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
