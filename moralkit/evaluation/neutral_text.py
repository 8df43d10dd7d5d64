"""Neutral English sentences for the fluency check (perplexity), written for this companion.

Everyday descriptive prose with no moral content, so that a change in perplexity under steering
measures damage to the language model rather than a change of moral preference. A researcher can
pass any other texts through ``BehaviourConfig.fluency_texts``.
"""

NEUTRAL_TEXTS: tuple[str, ...] = (
    "The train to the coast leaves the central station every morning at half past eight.",
    "Water boils at a lower temperature at high altitude because the air pressure is lower.",
    "She planted tomatoes, beans and a row of lettuce along the south side of the garden.",
    "The library opens at nine on weekdays and closes early on Saturday afternoons.",
    "To make the dough, mix the flour with warm water, a pinch of salt and a little yeast.",
    "The river flows north through the valley before it reaches the lake near the town.",
    "Most of the museum's paintings were moved to the new wing during the renovation.",
    "He checked the weather forecast and decided to take an umbrella to work.",
    "The bakery on the corner sells fresh bread, rolls and small fruit cakes.",
    "In autumn the leaves of the maple trees turn yellow, orange and deep red.",
    "The meeting was moved to Thursday because two members of the team were travelling.",
    "A bicycle chain needs a few drops of oil every few weeks to run smoothly.",
    "The city council approved a plan to add more benches and trees to the main square.",
    "Light from the sun takes a little more than eight minutes to reach the Earth.",
    "The children built a small boat from wood and tested it in the pond behind the school.",
    "Our flight landed twenty minutes early, so we waited for the bus at the airport cafe.",
    "The recipe calls for two eggs, a cup of milk and a spoonful of sugar.",
    "Clouds form when warm, moist air rises and cools until the water vapour condenses.",
    "The old bridge was repainted last summer and now looks much brighter than before.",
    "He spent the afternoon reading a book about the history of maps and navigation.",
    "The shop will be closed on Monday while new shelves are installed.",
    "Cats often sleep for more than twelve hours a day, mostly during daylight.",
    "The road along the coast is narrow, with sharp bends and views of the sea.",
    "She wrote the shopping list on the back of an envelope and left it on the table.",
)
