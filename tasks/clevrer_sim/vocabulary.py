"""CLEVRER's question words and program tokens, which CLEVRER-sim writes.

The question words are the 81 words of the real CLEVRER questions (lower-cased, split on spaces,
the trailing "?" removed), so every question CLEVRER-sim writes is made of words a tokenizer built
on the real questions already knows. The attribute values and answers are `tasks.questions`'.
"""

from tasks.questions import COLORS, MATERIALS, SHAPES

QUESTION_WORDS = frozenset(
    """after and any are before begins between blue brown collide collides colliding collision
    collisions color cube cube's cube, cubes cyan cylinder cylinder's cylinder, cylinders ends
    enter entering enters entrance event exit exiting exits first following for gray green happen
    how if is last many material metal moving next not object object's object, objects of presence
    purple red removed removed, responsible rubber scene second shape sphere sphere's sphere,
    spheres stationary that the there to video what when which will with without yellow""".split()
)
"""Words of the real CLEVRER questions and choices, as a tokenizer splits them on spaces."""

PROGRAM_MODULES = frozenset(
    """objects events all_events unseen_events start end unique count exist negate belong_to
    filter_color filter_material filter_shape filter_moving filter_stationary filter_in filter_out
    filter_collision filter_order filter_before filter_after filter_ancestor get_frame
    get_counterfact get_col_partner get_object query_color query_material query_shape""".split()
)
"""Program tokens that are functions; the other tokens are their literal arguments."""

PROGRAM_LITERALS = frozenset(COLORS + MATERIALS + SHAPES + ("first", "second", "last", "null"))
"""Program tokens that are arguments: attribute values, an order, and `null` (the whole video)."""
