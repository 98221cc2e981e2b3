from shop.users import get_usr


def order_line(user_id, item):
    return f"{get_usr(user_id)} ordered {item}"
