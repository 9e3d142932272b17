using System.Security.Cryptography;
using JasperFx.CommandLine;
using Marten;

namespace PamEventStore.Crypto;

public sealed class RotateKeysInput : NetCoreInput
{
    [Description("Only this organisation (default: every organisation that has keys)")]
    public string? OrgFlag { get; set; }

    [Description("Instead of adding data keys, re-wrap every data key with the active master key (after a master key rotation)")]
    public bool RewrapFlag { get; set; }
}

/// <summary>
/// <c>dotnet run --project src/PamEventStore -- rotate-keys [--org ORG] [--rewrap]</c>. Rotation adds a
/// data key and seals new recordings with it; every earlier key stays in the org's ring, so batches
/// sealed with it stay readable. <c>--rewrap</c> re-wraps data keys under the active master key, after
/// which a retired master key can be removed from configuration.
/// </summary>
[Description("Rotate organisations' data keys, or re-wrap them under the active master key", Name = "rotate-keys")]
public sealed class RotateKeysCommand : JasperFxAsyncCommand<RotateKeysInput>
{
    public override async Task<bool> Execute(RotateKeysInput input)
    {
        using var host = input.BuildHost();
        var keys = new OrgDataKeys(
            host.Services.GetRequiredService<IDocumentStore>(),
            host.Services.GetRequiredService<MasterKeys>(),
            host.Services.GetRequiredService<TimeProvider>());

        var known = await keys.OrgsAsync(CancellationToken.None);
        if (input.OrgFlag is { } named && !known.Contains(named))
        {
            // A mistyped org would otherwise be given a key ring of its own, and the one meant left as it was.
            Console.Error.WriteLine($"'{named}' has no key ring: no session was ever recorded in it. Nothing was rotated; the organisations with one: {string.Join(", ", known)}.");
            return false;
        }

        var orgs = input.OrgFlag is { } org ? [org] : known;
        var failed = new List<string>();
        foreach (var orgId in orgs)
        {
            // One org that fails (a key that does not open, a ring another node changed meanwhile)
            // does not stop the others; the command fails at the end, naming them, and can run again.
            try
            {
                if (input.RewrapFlag)
                {
                    var result = await keys.RewrapAsync(orgId, CancellationToken.None);
                    Console.WriteLine($"{orgId}: re-wrapped {result.Rewrapped} data key(s)");
                    if (result.Unopenable.Count == 0) continue;
                    Console.Error.WriteLine($"{orgId}: could not open {string.Join(", ", result.Unopenable)}: left under their old master key; " +
                                            "keep that master key configured, or accept that what they sealed stays unreadable");
                    failed.Add(orgId);
                }
                else
                {
                    Console.WriteLine($"{orgId}: new data key {await keys.RotateAsync(orgId, CancellationToken.None)}");
                }
            }
            catch (Exception e) when (e is InvalidOperationException or JasperFx.ConcurrencyException or CryptographicException)
            {
                Console.Error.WriteLine($"{orgId}: failed: {e.Message}");
                failed.Add(orgId);
            }
        }

        if (orgs.Count == 0) Console.WriteLine("No organisation has data keys yet.");
        if (failed.Count > 0) Console.Error.WriteLine($"Not done for {failed.Count} organisation(s): {string.Join(", ", failed)}");
        return failed.Count == 0;
    }
}
