namespace PamEventStore.Tests.Infrastructure;

/// <summary>Turns a test holds (legacy uploads', log pages'); disposing gives back every one still held, so a failed assertion leaves none taken.</summary>
public sealed class HeldTurns : IDisposable
{
    private readonly List<IDisposable> _turns = [];

    /// <summary>Every turn there is, as if that many requests were being served; fails if one is not free.</summary>
    public static async Task<HeldTurns> TakeAllAsync(int count, Func<Task<IDisposable?>> take)
    {
        var turns = new HeldTurns();
        try
        {
            for (var i = 0; i < count; i++) turns._turns.Add((await take()).ShouldNotBeNull());
            return turns;
        }
        catch
        {
            turns.Dispose();
            throw;
        }
    }

    /// <summary>One turn given back, for a request waiting for one.</summary>
    public void GiveBackOne() => _turns[0].Dispose();

    public void Dispose()
    {
        foreach (var turn in _turns) turn.Dispose();
    }
}
